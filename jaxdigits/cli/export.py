"""Export a training run as a shareable bundle, or verify one.

  python -m jaxdigits.export --workdir=runs/cnn --out=cnn_bundle
  python -m jaxdigits.export --verify=cnn_bundle

The bundle format and its checks live in ``jaxdigits.bundle``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from jaxdigits import bundle, checkpoints
from jaxdigits.inference import predictor as predict


def main(argv: Sequence[str] | None = None) -> int:
  # argparse, not absl flags, for the reason given in predict.main.
  parser = argparse.ArgumentParser(prog="python -m jaxdigits.export",
                                   description="Write or check a shareable model bundle.")
  parser.add_argument("--workdir", help="training workdir (its best-on-validation checkpoint)")
  parser.add_argument("--out", help="bundle folder to create (must not exist)")
  parser.add_argument("--verify", metavar="BUNDLE", help="check a bundle and load it")
  args = parser.parse_args(argv)
  if bool(args.verify) == bool(args.workdir or args.out) or (args.workdir and not args.out) or (
      args.out and not args.workdir):
    parser.error("give --workdir and --out to export, or --verify=BUNDLE alone")
  predict.quiet_libraries()
  try:
    if args.verify:
      manifest = bundle.verify(args.verify)
      bundle.load(args.verify)  # the files are whole; this checks they fit the model too
      print(f"{args.verify}: ok, {len(manifest['files'])} files, digest {manifest['digest']}")
    else:
      manifest = bundle.export(args.workdir, args.out)
      print(f"wrote {args.out}: {len(manifest['files'])} files, "
            f"{sum(f['bytes'] for f in manifest['files'].values()):,} bytes, "
            f"digest {manifest['digest']}")
  except (bundle.BundleError, checkpoints.CheckpointError, ValueError) as e:
    print(f"jaxdigits.export: error: {e}", file=sys.stderr)
    return 2
  return 0


def run() -> None:
  sys.exit(main())


if __name__ == "__main__":
  run()
