"""Gradio demo: draw or upload a digit, see the prediction and the 28x28 input the model reads.

  python -m jaxdigits.demo [--checkpoint=BUNDLE_OR_WORKDIR] [--host 127.0.0.1] [--port 7860]
                           [--share]

Scripting: ``gradio_client.Client(url).predict(handle_file("digit.png"), api_name="/predict")``
returns a Label value: ``{"label": "7", "confidences": [{"label": "7", "confidence": ...}, ...]}``,
or ``{"label": "<message>"}`` when the image cannot be read or holds no digit.
"""

from __future__ import annotations

import os

# Offline by default: no analytics, version checks or Hub calls. Gradio and huggingface_hub
# read these when imported, hence before the imports below.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import argparse  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import sys  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from pathlib import Path  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from typing import Any, Sequence  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

import gradio as gr  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from PIL import Image  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

import jaxdigits  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

DRAW_A_DIGIT = "draw a digit"
MAX_PIXELS = 50_000_000  # a 50-megapixel photo decodes to ~200 MB of floats; refuse above
MAX_FILE_SIZE = "25mb"   # larger than any phone photo, small enough to keep uploads quick
CANVAS = 400
BRUSH = 14  # radius in canvas pixels: strokes about as thick, relative to the digit, as MNIST's
VIEW_SCALE = 10  # the 28x28 input is shown at 280x280, nearest-neighbour, so pixels stay visible

Label = dict[str, float] | str

# Gradio's editor starts with no tool selected ("select the draw tool to start"); a sketchpad
# that cannot be drawn on at once is a puzzle, so pick the brush on load and after clearing.
SELECT_BRUSH_JS = """
() => {
  const pick = (tries) => {
    const brush = document.querySelector('#sketchpad button[aria-label="Brush"]');
    if (brush) brush.click(); else if (tries > 0) setTimeout(() => pick(tries - 1), 200);
  };
  pick(50);
  document.addEventListener('click', (e) => {
    if (e.target.closest('#clear, #sketchpad button[aria-label="Clear canvas"]'))
      setTimeout(() => pick(10), 300);
  });
}
"""

CLEAR_CANVAS_JS = """
() => {
  document.querySelector('#sketchpad button[aria-label="Clear canvas"]')?.click();
  return [];
}
"""

from jaxdigits.inference.demo import *  # noqa: F401,F403  (mechanical split; cleaned up next)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxdigits.demo",
                                   description="Gradio sketchpad demo over a trained model.")
  parser.add_argument("--checkpoint", default=None,
                      help="bundle folder or training workdir (default: the shipped MNIST CNN)")
  parser.add_argument("--host", default="127.0.0.1",
                      help="address to bind; 0.0.0.0 exposes the demo to the network")
  parser.add_argument("--port", type=int, default=7860)
  parser.add_argument("--share", action="store_true",
                      help="also open a public gradio.live link (needs the internet)")
  parser.add_argument("--tta", action="store_true", help=predict.TTA_HELP)
  args = parser.parse_args(argv)
  predict.quiet_libraries()
  try:
    predictor = jaxdigits.load(args.checkpoint)
    predictor = predict.Augmented.of(predictor) if args.tta else predictor
    warm_up(predictor)  # also refuses a model that cannot read new images (native USPS)
  except (ValueError, RuntimeError) as e:  # BundleError, CheckpointError
    print(f"jaxdigits.demo: error: {e}", file=sys.stderr)
    return 2
  app = build(predictor)
  app.queue(default_concurrency_limit=2)
  app.launch(server_name=args.host, server_port=args.port, share=args.share, ssr_mode=False,
             max_file_size=MAX_FILE_SIZE, show_error=True, js=SELECT_BRUSH_JS)
  return 0


def run() -> None:
  sys.exit(main())


if __name__ == "__main__":
  run()
