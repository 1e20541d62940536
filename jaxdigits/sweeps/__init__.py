"""Hyperparameter sweeps: sweep files, trials, selection on validation."""
