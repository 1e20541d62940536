"""``python -m jaxdigits.evaluate``: the command line lives in ``jaxdigits.cli.evaluate``."""

from jaxdigits.cli.evaluate import run

if __name__ == "__main__":
  run()
