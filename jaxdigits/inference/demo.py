"""Gradio demo: draw or upload a digit, see the prediction and the 28x28 input the model reads.

  python -m jaxdigits.demo [--checkpoint=BUNDLE_OR_RUN ...] [--tta] [--host 127.0.0.1]
                           [--port 7860] [--share]

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

# pylint: disable=g-import-not-at-top,wrong-import-position
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from jaxdigits.inference import preprocess  # noqa: E402
from jaxdigits.inference.contract import Predictor  # noqa: E402
# pylint: enable=g-import-not-at-top,wrong-import-position

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


def _classify(predictor: Predictor, source: preprocess.ImageSource,
              name: str) -> tuple[Label, np.ndarray | None]:
  """(all class probabilities, the enlarged model input) or (a message, None)."""
  try:
    x = predictor.prepare(source)
  except preprocess.ImageError as e:
    message = str(e).replace(preprocess.source_name(source), name)
    # preprocess says "blank" for an image whose strokes do not stand out from the paper.
    return (f"{DRAW_A_DIGIT} ({message})" if "blank" in message else message), None
  p = predictor.probabilities(x[None])[0]
  view = np.kron(x[..., 0], np.ones((VIEW_SCALE, VIEW_SCALE), np.uint8))
  return {str(d): float(p[d]) for d in range(len(p))}, view


def sketch_image(value: dict[str, Any] | np.ndarray | None) -> np.ndarray | None:
  """The drawing in a Sketchpad value (dict of background, layers, composite), or None if empty.

  ``composite`` is normally set; when it is not (some clients send only layers), the layers
  are stacked over the background. Transparent canvases stay RGBA: preprocessing flattens
  them on white.
  """
  if value is None or isinstance(value, np.ndarray):
    return value
  if value.get("composite") is not None:
    return np.asarray(value["composite"])
  images = [value.get("background"), *(value.get("layers") or [])]
  images = [np.asarray(im) for im in images if im is not None]
  if not images:
    return None
  canvas = Image.new("RGBA", images[0].shape[1::-1], (255, 255, 255, 0))
  for im in images:
    layer = Image.fromarray(im).convert("RGBA")
    if layer.size == canvas.size:
      canvas = Image.alpha_composite(canvas, layer)
  return np.asarray(canvas)


def predict_sketch(predictor: Predictor,
                   value: dict[str, Any] | None) -> tuple[Label, np.ndarray | None]:
  image = sketch_image(value)
  if image is None:
    return DRAW_A_DIGIT, None
  return _classify(predictor, image, "the canvas")


def predict_file(predictor: Predictor, payload: dict[str, Any] | str | None
                 ) -> tuple[Label, np.ndarray | None]:
  """An uploaded file, unpreprocessed (Gradio's FileData dict), so that a non-image or a huge
  image gets a message here instead of an exception inside Gradio's decoder."""
  if payload is None:
    return f"{DRAW_A_DIGIT} or upload an image of one", None
  path = payload if isinstance(payload, str) else payload.get("path")
  name = Path((payload.get("orig_name") if isinstance(payload, dict) else None) or path or "").name
  if not path:
    return f"{DRAW_A_DIGIT} or upload an image of one", None
  try:
    with Image.open(path) as im:  # reads the header only
      w, h = im.size
    if w * h > MAX_PIXELS:
      return (f"{name}: {w}x{h} pixels is more than this demo reads ({MAX_PIXELS // 10**6} "
              f"megapixels); scale it down"), None
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
    pass  # to_mnist_style names the problem
  try:
    return _classify(predictor, path, name)
  except Exception as e:  # pylint: disable=broad-except
    # One bad file must not take the server down for everyone.
    return f"{name}: could not be read ({type(e).__name__}); try a PNG or JPEG", None


def build(predictor: Predictor) -> gr.Blocks:
  """The app: Sketchpad and Upload tabs, top-3 label, the model's input, a clear button."""
  with gr.Blocks(title="jaxdigits", analytics_enabled=False) as app:
    gr.Markdown("## jaxdigits: draw a digit\nDraw one digit, 0 to 9, or upload a picture of "
                "one. The prediction updates after each stroke.")
    with gr.Row():
      with gr.Column():
        with gr.Tabs():
          with gr.Tab("Sketchpad"):
            sketch = gr.Sketchpad(
                label="Canvas", type="numpy", image_mode="RGBA", canvas_size=(CANVAS, CANVAS),
                brush=gr.Brush(default_size=BRUSH, colors=["#000000"], color_mode="fixed"),
                layers=False, transforms=(), format="png", elem_id="sketchpad")
          with gr.Tab("Upload"):
            upload = gr.Image(label="Digit image", type="filepath", sources=["upload", "clipboard"],
                              elem_id="upload")
        clear = gr.Button("Clear", elem_id="clear")
      with gr.Column():
        label = gr.Label(label="Prediction (top 3)", num_top_classes=3, elem_id="prediction")
        seen = gr.Image(label="What the model sees (28x28)", interactive=False, format="png",
                        elem_id="model-input")

    sketch.change(lambda v: predict_sketch(predictor, v), sketch, [label, seen],
                  api_visibility="private", show_progress="hidden", trigger_mode="always_last")
    # The scripting endpoint: one image in, one Label out. The model-input view follows in a
    # second step, so /predict's output stays a plain Label for gradio_client users.
    upload.change(lambda p: predict_file(predictor, p)[0], upload, label, api_name="predict",
                  preprocess=False, show_progress="hidden").then(
        lambda p: predict_file(predictor, p)[1], upload, seen, api_visibility="private",
        preprocess=False, show_progress="hidden")
    # The canvas is cleared by the editor's own "Clear canvas" button: setting the Sketchpad's
    # value to None from Python leaves Gradio 6's editor without a canvas.
    clear.click(lambda: (None, DRAW_A_DIGIT, None), None, [upload, label, seen],
                js=CLEAR_CANVAS_JS, api_visibility="private", queue=False)
  return app


def warm_up(predictor: Predictor) -> None:
  """Compiles the one-image forward pass now, so the first user does not wait for it."""
  digit = np.zeros((preprocess.MNIST_SIZE, preprocess.MNIST_SIZE), np.uint8)
  digit[6:22, 13:16] = 255
  predictor.probabilities(predictor.prepare(digit)[None])
