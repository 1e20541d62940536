"""Export a training run as a shareable bundle, or verify one.

  python -m jaxdigits.export --workdir=runs/cnn --out=cnn_bundle
  python -m jaxdigits.export --verify=cnn_bundle

The bundle format and its checks live in ``jaxdigits.bundle``.
"""

from __future__ import annotations

from absl import flags

from jaxdigits import bundle
from jaxdigits.cli import runner
from jaxdigits.errors import ConfigError


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", None, "training workdir (its best-on-validation checkpoint)",
                      flag_values=fv)
  flags.DEFINE_string("out", None, "bundle folder to create (must not exist)", flag_values=fv)
  flags.DEFINE_string("verify", None, "a bundle to check and load", flag_values=fv)


def _export(fv: flags.FlagValues, _: list[str]) -> None:
  if bool(fv.verify) == bool(fv.workdir or fv.out) or bool(fv.workdir) != bool(fv.out):
    raise ConfigError("give --workdir and --out to export, or --verify=BUNDLE alone")
  if fv.verify:
    manifest = bundle.verify(fv.verify)
    bundle.read(fv.verify)  # the files are whole; this checks they fit the model too
    print(f"{fv.verify}: ok, {len(manifest['files'])} files, digest {manifest['digest']}")
  else:
    manifest = bundle.export(fv.workdir, fv.out)
    print(f"wrote {fv.out}: {len(manifest['files'])} files, "
          f"{sum(f['bytes'] for f in manifest['files'].values()):,} bytes, "
          f"digest {manifest['digest']}")


COMMAND = runner.Command("export", __doc__, _define, _export)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
