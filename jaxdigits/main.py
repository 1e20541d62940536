"""``python -m jaxdigits.main``: the command line lives in ``jaxdigits.cli.main``."""

from jaxdigits.cli.main import run

if __name__ == "__main__":
  run()
