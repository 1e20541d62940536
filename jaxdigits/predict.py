"""``python -m jaxdigits.predict``: the command line lives in ``jaxdigits.cli.predict``."""

from jaxdigits.cli.predict import run

if __name__ == "__main__":
  run()
