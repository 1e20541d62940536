"""The command lines: one module per command, each parsing flags and calling the library."""
