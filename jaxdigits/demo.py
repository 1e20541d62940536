"""``python -m jaxdigits.demo``: the command line lives in ``jaxdigits.cli.demo``."""

from jaxdigits.cli.demo import run

if __name__ == "__main__":
  run()
