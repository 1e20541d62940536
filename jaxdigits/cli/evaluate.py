"""Evaluate a trained run (or an ensemble of runs) and analyse its errors.

  python -m jaxdigits.evaluate --workdir=DIR [--workdir=DIR2 ...] [--dataset=mnist|usps]
      [--split=test] [--tta] [--out=FOLDER] [--raw_dir=DIR] [--data_dir=DIR]
      [--label_issues [--folds=K]]

Writes metrics.json, the confusion matrix (text and PNG), a gallery of the worst errors and a
reliability diagram into DIR/eval/<dataset>_<split>/ (or ``--out``). Several runs, given as
repeated ``--workdir`` flags or one comma-separated list, are evaluated as their ensemble.
``--label_issues`` adds label_issues.csv (rank,source_index,given,suggested,score; the
source index is the row in the raw file) and label_issues.png; on ``--split=train`` it needs
``--folds=K``: K models of the run's config, each trained without one fold, as one vmapped
program.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from jaxdigits import config as config_lib
from jaxdigits.analysis import evaluate, label_issues
from jaxdigits.cli import runner


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_multi_string("workdir", None, runner.MODELS_HELP, flag_values=fv,
                            required=True)
  flags.DEFINE_alias("checkpoint", "workdir", flag_values=fv)
  flags.DEFINE_enum("dataset", None, config_lib.DATASETS, "dataset to evaluate on (default: "
                    "the one the model was trained on)", flag_values=fv)
  flags.DEFINE_enum("split", "test", evaluate.SPLITS, "split to evaluate", flag_values=fv)
  flags.DEFINE_boolean("tta", False, runner.TTA_HELP, flag_values=fv)
  flags.DEFINE_string("out", None, "output folder (default: WORKDIR/eval/<dataset>_<split>)",
                      flag_values=fv)
  flags.DEFINE_string("raw_dir", None, "raw data folder (default: $JAXDIGITS_RAW_DATA)",
                      flag_values=fv)
  flags.DEFINE_string("data_dir", None, "prepared tfds folder (default: $JAXDIGITS_DATA_DIR)",
                      flag_values=fv)
  flags.DEFINE_boolean("label_issues", False, "also list the split's likely label errors "
                       "(cleanlab): label_issues.csv and label_issues.png", flag_values=fv)
  flags.DEFINE_integer("folds", 0, "with --label_issues on --split=train: score each example "
                       "by one of K cross-validated models trained without it", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_enum("label_filter", label_issues.FILTERS[0], label_issues.FILTERS,
                    "cleanlab's filter_by for --label_issues", flag_values=fv)
  # Checked before any model or data is loaded, not after minutes of evaluation.
  flags.register_validator("out", lambda out: out is None or not Path(out).is_file(),
                           "is an existing file; give a folder (new or existing) for the "
                           "evaluation outputs", flag_values=fv)


def _evaluate(fv: flags.FlagValues, _: list[str]) -> None:
  workdirs = runner.model_paths(fv.workdir)
  result, out = evaluate.evaluate_run(workdirs, fv.dataset, fv.split, out_dir=fv.out,
                                      raw_dir=fv.raw_dir, data_dir=fv.data_dir, tta=fv.tta,
                                      label_issues=fv.label_issues, folds=fv.folds,
                                      label_filter=fv.label_filter)
  pairs = ", ".join(f"{p['true']}→{p['predicted']} ({p['count']})"
                    for p in result["confused_pairs"][:3])
  model = "model" if len(workdirs) == 1 else f"ensemble of {len(workdirs)} models"
  tta = ", test-time augmented" if fv.tta else ""
  print(f"{result['dataset']} {result['split']} ({result['examples']} images, {model} trained on "
        f"{result['trained_on']}{tta}): accuracy={result['accuracy']:.4f} "
        f"macro_f1={result['macro']['f1']:.4f} log_loss={result['log_loss']:.4f} "
        f"ece={result['expected_calibration_error']:.4f}")
  print(f"most confused: {pairs or 'none'}")
  if "label_issues" in result:
    issues = result["label_issues"]
    top = ", ".join(f"#{e['source_index']} {e['given']}→{e['suggested']}"
                    for e in issues["top"][:3])
    print(f"likely label errors ({issues['filter']}): {issues['count']} of {issues['examples']} "
          f"({top or 'none'}): label_issues.csv")
  print(f"outputs in {out}")


COMMAND = runner.Command("evaluate", __doc__, _define, _evaluate)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
