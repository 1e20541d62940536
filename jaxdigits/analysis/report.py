"""report.md from measured results: ``python -m jaxdigits.report --workdir=DIR``.

The run is evaluated afresh on its test split (and, where its input allows, on the other
dataset); ``--cross_workdir`` adds a model trained on the other dataset for the reverse
direction. Every number in the report comes from those evaluations, the run's saved config
and its metrics.jsonl; the prose around them is chosen from the numbers, never edited by hand.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any, Sequence

import jaxdigits
from jaxdigits import config as config_lib, records
from jaxdigits.analysis import evaluate
from jaxdigits.errors import ConfigError
from jaxdigits.inference import load as load_lib

NAMES = {"mnist": "MNIST", "usps": "USPS"}


def _evaluate_model(workdir: Path, **data_kw) -> dict[str, Any]:
  """A run evaluated on its own test split and on every other dataset its input allows."""
  predictor = jaxdigits.load(workdir)
  own = predictor.config.data.dataset
  results = {}
  for dataset in [own] + [d for d in config_lib.DATASETS if d != own]:
    try:
      metrics, out = evaluate.evaluate_run(workdir, dataset, "test", predictor=predictor,
                                           **data_kw)
    except ConfigError as e:  # a model reading native 16x16 USPS cannot read MNIST
      results[dataset] = {"unavailable": str(e)}
      continue
    results[dataset] = {"metrics": metrics, "dir": out}
  return {"workdir": workdir, "config": predictor.config, "trained_on": own,
          "log": records.read(workdir), "results": results}


def collect(workdir: str | Path, cross_workdir: str | Path | None = None,
            raw_dir: str | None = None, data_dir: str | None = None) -> dict[str, Any]:
  """Evaluates the run (and the cross-dataset run, if given); everything the report shows."""
  kw = dict(raw_dir=raw_dir, data_dir=data_dir)
  main = _evaluate_model(load_lib.locate(workdir)[1], **kw)
  cross = _evaluate_model(load_lib.locate(cross_workdir)[1], **kw) if cross_workdir else None
  return {"main": main, "cross": cross}


def _pct(x: float) -> str:
  return f"{100 * x:.2f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
  return ([f"| {' | '.join(header)} |", f"|{'|'.join(' --- ' for _ in header)}|"]
          + [f"| {' | '.join(str(c) for c in row)} |" for row in rows])


def _error_analysis(m: dict[str, Any]) -> list[str]:
  lines = [f"{m['errors']} of {m['examples']} test digits are misclassified."]
  pairs = m["confused_pairs"][:3]
  if pairs:
    named = "; ".join(f"{p['true']} read as {p['predicted']} ({p['count']} times, "
                      f"{_pct(p['share_of_errors'])} of errors)" for p in pairs)
    covered = sum(p["share_of_errors"] for p in pairs)
    lines.append(f"The most frequent confusions are {named}: together "
                 f"{_pct(covered)} of all errors.")
  per = m["per_class"]
  worst_recall = min(per, key=lambda c: per[c]["recall"])
  worst_precision = min(per, key=lambda c: per[c]["precision"])
  lines.append(f"The digit missed most often is {worst_recall} (recall "
               f"{_pct(per[worst_recall]['recall'])}); the prediction least to be trusted is "
               f"{worst_precision} (precision {_pct(per[worst_precision]['precision'])}).")
  right, wrong = m["confidence_correct"], m["confidence_wrong"]
  if wrong and right:
    lines.append(f"When wrong, the model's median confidence is {wrong['median']:.2f} against "
                 f"{right['median']:.2f} when right. Flagging predictions below 0.9 for a human "
                 f"would catch {_pct(1 - wrong['share_above_0.9'])} of the errors while "
                 f"flagging {_pct(1 - right['share_above_0.9'])} of the correct answers.")
  return lines


def _calibration(m: dict[str, Any]) -> str:
  bins = m["reliability_bins"]
  n = sum(b["count"] for b in bins)
  gap = sum(b["confidence"] * b["count"] for b in bins) / n - m["accuracy"]
  verdict = ("confidence matches accuracy" if abs(gap) < 5e-4 else
             f"the model is {'over' if gap > 0 else 'under'}-confident by {abs(gap):.4f}")
  return (f"Expected calibration error {m['expected_calibration_error']:.4f} "
          f"({evaluate.ECE_BINS} equal-width bins of top-class confidence): mean confidence "
          f"{m['accuracy'] + gap:.4f} against accuracy {m['accuracy']:.4f}, so {verdict} on "
          f"average. Log loss {m['log_loss']:.4f}.")


def render(results: dict[str, Any], report_dir: Path) -> str:
  """The Markdown report; figure links are relative to ``report_dir``."""
  main, cross = results["main"], results["cross"]
  own = main["trained_on"]
  own_result = main["results"][own]
  m, eval_dir = own_result["metrics"], own_result["dir"]
  rel = lambda p: Path(os.path.relpath(p, report_dir)).as_posix()
  config, log = main["config"], main["log"]
  final = log.final or {}  # a bundle, or an unfinished run, has no final record
  out = [f"# jaxdigits results: {NAMES[own]} model `{main['workdir'].name}`", "",
         f"Generated by `python -m jaxdigits.report` on "
         f"{datetime.date.today().isoformat()} from `{main['workdir']}`. Every number below is "
         f"measured: re-evaluated from the best-on-validation checkpoint, or read from the "
         f"run's saved config and metrics.jsonl.", "", "## Data", ""]
  sizes = [("train", final.get("train_examples") or "n/a"),
           ("validation", final.get("validation_examples") or "n/a"),
           ("test", m["examples"])]
  out += _table(["split", "examples"], sizes)
  out += ["", f"Dataset {NAMES[own]}; validation is the last "
          f"{_pct(config.data.validation_fraction)} of the official train split and picks the "
          f"checkpoint; the test split is only reported. Input "
          f"{'x'.join(map(str, config_lib.image_shape(config.data)))}"
          f"{', resized MNIST-style' if config.data.mnist_style else ''}.", "",
          "## Model and training", ""]
  settings = [(f"model.{k}", v) for k, v in config.model.items()]
  settings += [(f"train.{k}", v) for k, v in config.train.items()]
  out += _table(["setting", "value"], settings)
  if log.epochs:
    out += ["", f"Trained {len(log.epochs)} epochs in {log.epoch_seconds:.0f} s of training "
            f"steps; best validation accuracy {_pct(max(e['val_accuracy'] for e in log.epochs))}"
            f" at epoch {final.get('best_epoch') or 'n/a'}."]
  out += ["", "## Test results", "",
          f"Accuracy **{_pct(m['accuracy'])}** on {m['examples']} test digits; macro F1 "
          f"{m['macro']['f1']:.4f}, weighted F1 {m['weighted']['f1']:.4f}.", ""]
  per = m["per_class"]
  out += _table(["digit", "precision", "recall", "F1", "support"],
                [(c, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}",
                  v["support"]) for c, v in per.items()]
                + [(avg, f"{m[avg]['precision']:.4f}", f"{m[avg]['recall']:.4f}",
                    f"{m[avg]['f1']:.4f}", m["examples"]) for avg in ("macro", "weighted")])
  out += ["", "## Confusion matrix", "",
          f"![confusion matrix]({rel(eval_dir / 'confusion_matrix.png')})", "", "```",
          (eval_dir / "confusion_matrix.txt").read_text().rstrip(), "```", "",
          "## Typical errors", "", *_error_analysis(m), "",
          f"![most confident errors]({rel(eval_dir / 'misclassified.png')})", "",
          "## Calibration", "", _calibration(m), "",
          f"![reliability diagram]({rel(eval_dir / 'reliability.png')})", "",
          "## Cross-dataset", ""]
  rows, drops = [], []
  for model in [main] + ([cross] if cross else []):
    home = model["results"][model["trained_on"]]["metrics"]["accuracy"]
    for dataset, r in model["results"].items():
      if "unavailable" in r:
        rows.append((NAMES[model["trained_on"]], NAMES[dataset], "not readable", "n/a"))
        continue
      acc = r["metrics"]["accuracy"]
      rows.append((NAMES[model["trained_on"]], NAMES[dataset], _pct(acc),
                   "in-domain" if dataset == model["trained_on"] else f"{100 * (acc - home):+.2f} pts"))
      if dataset != model["trained_on"]:
        drops.append((model["trained_on"], dataset, home, r["metrics"]))
  out += _table(["trained on", "tested on (test split)", "accuracy", "vs in-domain"], rows)
  out += ["", "USPS's 16x16 digits are resized MNIST-style (fitted into 20x20, centred by mass "
          "in 28x28), as new images are, so both models read the same 28x28 input."]
  if not cross:
    out += ["", "The reverse direction needs a model trained on the other dataset with "
            "`data.mnist_style=True`; pass it as `--cross_workdir`."]
  out += ["", "## Limitations", ""]
  pair = m["confused_pairs"][0] if m["confused_pairs"] else None
  if pair:
    out.append(f"- What it gets wrong: most often {pair['true']} read as {pair['predicted']}, "
               f"digits whose strokes overlap (see Typical errors); "
               f"{_pct(m['confidence_wrong']['share_above_0.9'] if m['confidence_wrong'] else 0)}"
               f" of its errors are confident (p > 0.9), so confidence alone does not flag them.")
  for trained, tested, home, shifted in drops:
    top = shifted["confused_pairs"][0] if shifted["confused_pairs"] else None
    worst = (f"; its most frequent error there is {top['true']} read as {top['predicted']} "
             f"({top['count']} of {shifted['errors']} errors)" if top else "")
    out.append(f"- Domain shift: trained on {NAMES[trained]}, it drops from {_pct(home)} to "
               f"{_pct(shifted['accuracy'])} on {NAMES[tested]}{worst}. The datasets differ in "
               f"writers, scanning and stroke width; expect a drop on photographed or "
               f"tablet-drawn digits too, and fine-tune on samples of the target source.")
  out += ["- Single digit only: each image must hold exactly one digit; numbers with several "
          "digits must be segmented first, and touching digits are not separated.",
          "- No reject option: anything, even a letter or a scribble, is mapped to one of 0–9; "
          "a blank image is refused by preprocessing, nothing else is.",
          "- Preprocessing assumes one dark-on-light or light-on-dark stroke on a roughly uniform "
          "background; shadows, ruled paper or several objects in the picture break the "
          "crop-to-ink step.", "", "## Applications", "",
          "- Postal codes: reading ZIP codes on envelopes, where USPS's digits come from.",
          "- Bank cheques: reading the courtesy amount and account numbers.",
          "- Forms: tax, census and survey forms with boxed digit fields (NIST's forms are "
          "MNIST's source), meter readings, exam marks.", ""]
  return "\n".join(out)


def write_report(workdir: str | Path, cross_workdir: str | Path | None = None,
                 raw_dir: str | None = None, data_dir: str | None = None) -> Path:
  """Evaluates and writes <workdir>/report.md (for a bundle, which takes no new files:
  ``evaluate.default_out_dir``'s report.md); returns its path."""
  results = collect(workdir, cross_workdir, raw_dir, data_dir)
  kind, root = load_lib.locate(results["main"]["workdir"])
  path = (evaluate.default_out_dir([root], "report.md") if kind is load_lib.Kind.BUNDLE
          else root / "report.md")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(render(results, path.parent))
  return path
