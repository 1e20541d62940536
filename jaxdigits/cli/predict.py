"""Recognise the digit in each image file.

  python -m jaxdigits.predict [--checkpoint=MODEL[,MODEL...]] image.png [more.jpg ...]
      [--number] [--json] [--tta] [--runtime=jax|onnx]

One line per image (``file: digit (p=...)  top3 ...``), or with ``--json`` one JSON list of
``{"file", "digit", "probability", "top3"}``. An image the model's not-a-digit detector
refuses (scribbles, letters, shapes, photos; ``jaxdigits.inference.ood``) is
``file: not a digit: <reason>``, or the row ``{"file", "digit": null, "reason"}``; that is an
answer, not a failure (exit 0). Models without a detector (classic runs, older bundles,
``--runtime=onnx``) always answer a digit. With ``--number`` each image is read as a whole
number, left to right (``file: 2026  (2 p=0.999, 0 p=0.998, ...)``; JSON rows ``{"file",
"number", "digits": [{"digit", "probability", "box": [x0, y0, x1, y1]}]}``, box ends
exclusive); a single digit is a one-digit number. An image none of whose pieces looks like a
digit is ``file: not a number: <reason>``, its row ``"number": null`` with a ``"reason"``.
An image that cannot be read (missing,
empty, not an image, truncated, over ``preprocess.MAX_PIXELS``, blank) is named in one line on
stderr, and with ``--json`` is also a row ``{"file", "error"}`` in its place; the others are
still predicted, and the exit code is 1. ``--runtime=onnx`` serves bundles'
``model.onnx`` through onnxruntime, without importing JAX.
"""

from __future__ import annotations

import json
import sys

from absl import flags

import jaxdigits
from jaxdigits.cli import runner
from jaxdigits.errors import ConfigError, ImageError
from jaxdigits.inference import contract
from jaxdigits.inference import load as load_lib


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_multi_string("checkpoint", None, f"{runner.MODELS_HELP} (default: the shipped "
                            "MNIST CNN)", flag_values=fv)
  flags.DEFINE_boolean("number", False, "read each image as a number of one or more digits",
                       flag_values=fv)
  flags.DEFINE_boolean("json", False, "print one JSON list instead of lines", flag_values=fv)
  flags.DEFINE_boolean("tta", False, runner.TTA_HELP, flag_values=fv)
  flags.DEFINE_enum("runtime", "jax", load_lib.RUNTIMES, load_lib.RUNTIME_HELP, flag_values=fv)


def _predict(fv: flags.FlagValues, images: list[str]) -> int:
  if not images:
    raise ConfigError("give one or more image files, e.g. python -m jaxdigits.predict digit.png")
  predictor = jaxdigits.load(runner.model_paths(fv.checkpoint), tta=fv.tta,
                             runtime=fv.runtime)
  if fv.number:
    return _read_numbers(predictor, images, fv.json)
  results = predictor.predict(images)
  failed = [r for r in results if isinstance(r, ImageError)]
  for error in failed:
    _report(error)
  if fv.json:
    # One row per file, in the order given, so a script can pair rows with its inputs.
    print(json.dumps([_error_row(path, r) if isinstance(r, ImageError) else r.to_json()
                      for path, r in zip(images, results)]))
  else:
    for r in results:
      if isinstance(r, contract.Prediction) and r.reason is not None:
        print(f"{r.file}: not a digit: {r.reason}")
      elif isinstance(r, contract.Prediction):
        top3 = "  ".join(f"{d}:{p:.3f}" for d, p in r.top3)
        print(f"{r.file}: {r.digit} (p={r.probability:.3f})  top3 {top3}")
  return 1 if failed else 0


def _report(error: ImageError) -> None:
  print(f"jaxdigits.predict: error: {runner.one_line(str(error))}", file=sys.stderr)


def _error_row(path: str, error: ImageError) -> dict[str, str]:
  return {"file": path, "error": runner.one_line(str(error))}


def _read_numbers(predictor: contract.Predictor, images: list[str], as_json: bool) -> int:
  # Imported here: scipy's segmentation is only paid for by --number.
  from jaxdigits.inference import numbers  # pylint: disable=g-import-not-at-top
  rows, failed = [], 0
  for path in images:
    try:
      reading = numbers.read_number(predictor, path)
    except ImageError as error:
      _report(error)
      failed += 1
      rows.append(_error_row(path, error))
      continue
    if as_json:
      rows.append(reading.to_json())
    elif reading.reason is not None:
      print(f"{reading.file}: not a number: {reading.reason}")
    else:
      digits = ", ".join(f"{d.digit} p={d.probability:.3f}" for d in reading.digits)
      print(f"{reading.file}: {reading.number}  ({digits})")
  if as_json:
    print(json.dumps(rows))
  return 1 if failed else 0


COMMAND = runner.Command("predict", __doc__, _define, _predict, positional="image files")
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
