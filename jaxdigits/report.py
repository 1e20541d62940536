"""``python -m jaxdigits.report``: the command line lives in ``jaxdigits.cli.report``."""

from jaxdigits.cli.report import run

if __name__ == "__main__":
  run()
