"""``python -m jaxdigits.ood``: the command line lives in ``jaxdigits.cli.ood``."""

from jaxdigits.cli.ood import run

if __name__ == "__main__":
  run()
