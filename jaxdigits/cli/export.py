"""Export a training run as a shareable bundle, or verify one.

  python -m jaxdigits.export --workdir=runs/cnn --out=cnn_bundle
  python -m jaxdigits.export --verify=cnn_bundle

A bundle holds the run's model (a Flax run's best-on-validation variables, a classic run's
fitted arrays) and, made from it, ``model.onnx`` (served by ``--runtime=onnx`` without JAX)
and ``model.stablehlo``; ``model_card.json`` says their contract, or why a model has no
such file (kNN, RBF SVM, random forest). ``--verify`` checks every file against the
manifest, loads the model and runs the exported files against it. The bundle format and its
checks live in ``jaxdigits.bundle`` and ``jaxdigits.manifest``.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from jaxdigits import bundle
from jaxdigits.cli import runner
from jaxdigits.errors import ConfigError


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", None, "training workdir (its best-on-validation checkpoint) "
                      "or a classic model's run", flag_values=fv)
  flags.DEFINE_string("out", None, "bundle folder to create (must not exist)", flag_values=fv)
  flags.DEFINE_string("verify", None, "a bundle to check and load", flag_values=fv)


def _export(fv: flags.FlagValues, _: list[str]) -> None:
  if bool(fv.verify) == bool(fv.workdir or fv.out) or bool(fv.workdir) != bool(fv.out):
    raise ConfigError("give --workdir and --out to export, or --verify=BUNDLE alone")
  if fv.workdir and "," in fv.workdir:
    raise ConfigError(f"--workdir={fv.workdir}: a bundle holds one model; export each run to "
                      f"its own bundle and serve them together as an ensemble "
                      f"(--checkpoint=BUNDLE_A,BUNDLE_B, with either runtime)")
  if fv.verify:
    manifest = bundle.verify(fv.verify)
    # The files are whole; this checks they fit the model, and the exports still match it.
    checked = bundle.check_exports(fv.verify)
    print(f"{fv.verify}: ok, {len(manifest['files'])} files, digest {manifest['digest']}")
    for name, gap in checked.items():
      print(f"  {name}: " + (f"max |logit - JAX's| {gap:.2g} on a probe batch"
                             if isinstance(gap, float) else gap))
  else:
    manifest = bundle.export(fv.workdir, fv.out)
    print(f"wrote {fv.out}: {len(manifest['files'])} files, "
          f"{sum(f['bytes'] for f in manifest['files'].values()):,} bytes, "
          f"digest {manifest['digest']}")
    card = json.loads((Path(fv.out) / bundle.CARD).read_text())
    for name, record in card["export"]["files"].items():
      print(f"  {name}: " + (f"not written: {record['refused']}" if "refused" in record else
                             f"{record['bytes']:,} bytes"))


COMMAND = runner.Command("export", __doc__, _define, _export)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
