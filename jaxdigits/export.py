"""``python -m jaxdigits.export``: the command line lives in ``jaxdigits.cli.export``."""

from jaxdigits.cli.export import run

if __name__ == "__main__":
  run()
