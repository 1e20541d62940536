"""``python -m jaxdigits.compare``: the command line lives in ``jaxdigits.cli.compare``."""

from jaxdigits.cli.compare import run

if __name__ == "__main__":
  run()
