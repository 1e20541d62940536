"""``python -m jaxdigits.sweep``: the command line lives in ``jaxdigits.cli.sweep``."""

from jaxdigits.cli.sweep import run

if __name__ == "__main__":
  run()
