"""Train a model: ``python -m jaxdigits.main --config=configs/cnn.py --workdir=DIR``.

Config fields can be overridden on the command line, e.g. ``--config.train.num_epochs=3``.
Rerunning on the same --workdir resumes it; a workdir of another config, or one another
run is using, is refused. Prints one line per epoch and, at the end, the test accuracy and
the commands that evaluate, demo and export the model; ``--verbosity=0`` adds the
libraries' INFO notes.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import jax
from absl import flags

from jaxdigits.cli import runner
from jaxdigits.models.classic import STATE_DIR
from jaxdigits.training import engine


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("workdir", None, "directory for checkpoints and metrics; reruns resume",
                      flag_values=fv, required=True)


def summary(final: dict[str, Any], workdir: str) -> str:
  """The end of a run: what it scored, where it is, and what to run next on it."""
  w = shlex.quote(workdir)
  bundle = shlex.quote(workdir.rstrip("/") + "_bundle")
  if final["kind"] == "classic":
    chosen, saved = "fitted classic model", Path(workdir) / STATE_DIR
  else:
    chosen, saved = f"best epoch {final['best_epoch']}", Path(workdir) / "checkpoints"
  test = final.get("test_accuracy")
  return "\n".join([
      "",
      f"test accuracy  {test:.2%}" if test is not None else "test accuracy  not evaluated",
      f"validation     {final['val_accuracy']:.2%} ({chosen}, chosen on validation)",
      f"saved in       {saved}",
      f"metrics        {Path(workdir) / 'metrics.jsonl'}",
      "",
      "next:",
      f"  python -m jaxdigits.evaluate --workdir={w}      # errors, confusion, calibration",
      f"  python -m jaxdigits.demo --checkpoint={w}       # draw digits in the browser",
      f"  python -m jaxdigits.export --workdir={w} --out={bundle}   # a shareable bundle",
  ])


def _train(fv: flags.FlagValues, _: list[str]) -> None:
  final = engine.train_and_evaluate(fv.config, fv.workdir)
  if jax.process_index() == 0:  # every process of a multi-host run ends here
    print(summary(final, fv.workdir), flush=True)


COMMAND = runner.Command("main", __doc__, _define, _train, config="training config file",
                         lock_config=True)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
