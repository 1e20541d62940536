"""Gradio demo: draw or upload a digit, see the prediction and the 28x28 input the model reads.

  python -m jaxdigits.demo [--checkpoint=BUNDLE_OR_RUN ...] [--tta] [--host 127.0.0.1]
                           [--port 7860] [--share]

Scripting: ``gradio_client.Client(url).predict(handle_file("digit.png"), api_name="/predict")``
returns a Label value: ``{"label": "7", "confidences": [{"label": "7", "confidence": ...}, ...]}``,
or ``{"label": "<message>"}`` when the image cannot be read, holds none or is not a digit.
``api_name="/predict_number"`` reads the image as a number, left to right: ``{"file",
"number": "2026", "digits": [{"digit", "probability", "box": [x0, y0, x1, y1]}, ...]}`` (box
ends exclusive), or ``{"file", "number": None, "digits": [...], "reason": "<message>"}``.
"""

from __future__ import annotations

import base64
import binascii
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
from PIL import Image, ImageDraw  # noqa: E402

from jaxdigits.inference import numbers, preprocess  # noqa: E402
from jaxdigits.inference.contract import Predictor  # noqa: E402
# The upload folder, re-exported: the command and the tests name it through this module.
from jaxdigits.inference.demo_uploads import (  # noqa: E402,F401  pylint: disable=unused-import
    UPLOAD_MAX_AGE_S, UPLOAD_MAX_BYTES, _prune, upload_folder)
# pylint: enable=g-import-not-at-top,wrong-import-position

DRAW_A_DIGIT = "draw a digit"
MAX_FILE_SIZE = "25mb"   # larger than any phone photo, small enough to keep uploads quick
CANVAS = (560, 280)  # width, height: room for a number, left to right
BRUSH = 14  # radius in canvas pixels: strokes about as thick, relative to the digit, as MNIST's
VIEW_SCALE = 10  # the 28x28 input is shown at 280x280, nearest-neighbour, so pixels stay visible
BOXES_VIEW = 640  # the input with its digit boxes is shown at most this wide or tall

Label = dict[str, float] | str
Number = dict[str, Any]  # NumberReading.to_json(), or a reading with "number": None and a reason

# The drawing surface: a plain 2D canvas, not Gradio's ImageEditor, whose every change and
# every status update of an event reading it exports three PNG layers through WebGL and
# uploads them (~0.5-2 s a stroke on 2 CPU cores). After each stroke the page sends a copy
# SEND pixels wide as a PNG data URL (~2 kB), and the label step reads only that.
SEND = (CANVAS[0] // 2, CANVAS[1] // 2)
CANVAS_HTML = (f'<canvas width="{CANVAS[0]}" height="{CANVAS[1]}" aria-label="Canvas: draw a '
               f'digit or a number here"></canvas>')
CANVAS_CSS = f"""
canvas {{ display: block; width: 100%; max-width: {CANVAS[0]}px; margin: 0 auto;
         aspect-ratio: {CANVAS[0]} / {CANVAS[1]}; background: white; cursor: crosshair;
         border: 1px solid var(--border-color-primary); touch-action: none; }}
"""
CANVAS_JS = f"""
const canvas = element.querySelector('canvas');
const ctx = canvas.getContext('2d');
const small = document.createElement('canvas');
small.width = {SEND[0]};
small.height = {SEND[1]};
let last = null;
const at = (e) => {{
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width,
          (e.clientY - r.top) * canvas.height / r.height];
}};
const segment = (a, b) => {{
  ctx.strokeStyle = '#000'; ctx.lineWidth = {2 * BRUSH};
  ctx.lineCap = 'round'; ctx.lineJoin = 'round';
  ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
}};
canvas.addEventListener('pointerdown', (e) => {{
  canvas.setPointerCapture(e.pointerId); last = at(e); segment(last, last);
}});
canvas.addEventListener('pointermove', (e) => {{
  if (!last) return;
  const p = at(e); segment(last, p); last = p;
}});
const end = () => {{
  if (!last) return;
  last = null;
  const g = small.getContext('2d');
  g.clearRect(0, 0, small.width, small.height);
  g.drawImage(canvas, 0, 0, small.width, small.height);
  props.value = small.toDataURL('image/png');
  trigger('change');
}};
canvas.addEventListener('pointerup', end);
canvas.addEventListener('pointercancel', end);
"""

CLEAR_CANVAS_JS = """
() => {
  const canvas = document.querySelector('#sketchpad canvas');
  canvas?.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
  return [];
}
"""
NOT_A_DIGIT = "Not a digit"
MAX_DATA_URL = 4 * 2**20  # what a canvas sends is ~2-20 kB; refuse anything absurd unread


def _classify(predictor: Predictor, source: preprocess.ImageSource,
              name: str) -> tuple[Label, np.ndarray | None]:
  """(all class probabilities, the enlarged model input) or (a message, None)."""
  try:
    x = predictor.prepare(source)
  except preprocess.ImageError as e:
    message = str(e).replace(preprocess.source_name(source), name)
    # preprocess says "blank" for an image whose strokes do not stand out from the paper.
    return (f"{DRAW_A_DIGIT} ({message})" if "blank" in message else message), None
  view = np.kron(x[..., 0], np.ones((VIEW_SCALE, VIEW_SCALE), np.uint8))
  reason = predictor.not_digit(x[None])[0]
  if reason is not None:  # a scribble or a letter gets no confident digit
    return f"{NOT_A_DIGIT}: {reason}", view
  p = predictor.probabilities(x[None])[0]
  return {str(d): float(p[d]) for d in range(len(p))}, view


HEAT_SAMPLES = 16  # SmoothGrad copies: 5 ms a map on the shipped CNN (64: 16 ms), as smooth


def heat_view(predictor: Predictor, source: preprocess.ImageSource | None) -> np.ndarray | None:
  """SmoothGrad over the model input for the predicted digit, enlarged as the input is; None
  for models without gradients (classic, ONNX, ensembles) and images without a digit."""
  module, variables = getattr(predictor, "module", None), getattr(predictor, "variables", None)
  if source is None or module is None or variables is None:
    return None
  try:
    x = predictor.prepare(source)[None]
  except Exception:  # pylint: disable=broad-except
    return None  # the label step has already said why
  from jaxdigits.inference import explain  # pylint: disable=g-import-not-at-top
  maps = explain.saliency(module.apply, variables, x, samples=HEAT_SAMPLES)
  return np.kron(explain.overlay(x, maps)[0], np.ones((VIEW_SCALE, VIEW_SCALE, 1), np.uint8))


def _read_number(predictor: Predictor, source: preprocess.ImageSource, name: str) -> Number:
  try:
    return numbers.read_number(predictor, source, name=name).to_json()
  except preprocess.ImageError as e:
    return _no_number(name, str(e).replace(preprocess.source_name(source), name))


def _no_number(name: str, reason: str) -> Number:
  return {"file": name, "number": None, "digits": [], "reason": reason}


def number_text(number: Number) -> str:
  if number["number"] is None:
    return f"Number: none ({number['reason']})"
  return f"Number: {number['number']}"


def boxes_view(source: preprocess.ImageSource, number: Number) -> np.ndarray | None:
  """The input flattened on white, each digit's box drawn over it, at most BOXES_VIEW wide."""
  if not number["digits"]:
    return None
  if isinstance(source, np.ndarray):
    im = Image.fromarray(source).convert("RGBA")
  elif isinstance(source, Image.Image):
    im = source.convert("RGBA")
  else:
    with Image.open(source) as opened:
      im = opened.convert("RGBA")
  im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im)
  scale = min(1.0, BOXES_VIEW / max(im.size))
  im = im.convert("RGB").resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
  draw = ImageDraw.Draw(im)
  width = max(2, round(max(im.size) / 200))
  for d in number["digits"]:
    x0, y0, x1, y1 = (round(v * scale) for v in d["box"])
    # Box ends are exclusive; PIL's rectangle includes its end pixels.
    draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=(220, 30, 30),
                   width=width)
    draw.text((x0 + width, y0 + width), str(d["digit"]), fill=(220, 30, 30))
  return np.asarray(im)


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


def canvas_image(value: str | dict[str, Any] | np.ndarray | None) -> np.ndarray | None:
  """The drawing: the PNG data URL the page's canvas sends, or a Sketchpad value (see
  sketch_image); None when there is none.

  Raises:
    ImageError: a data URL that is not a readable PNG, or too large.
  """
  if not isinstance(value, str):
    return sketch_image(value)
  if not value:
    return None
  head, _, body = value.partition(",")
  if head != "data:image/png;base64" or len(value) > MAX_DATA_URL:
    raise preprocess.ImageError("the canvas: not a PNG data URL the demo's page sends")
  try:
    data = base64.b64decode(body, validate=True)
  except binascii.Error:
    raise preprocess.ImageError("the canvas: the data URL is not base64") from None
  with preprocess.open_image(data, name="the canvas") as im:
    return np.asarray(im.convert("RGBA"))


def sketch_label(predictor: Predictor, value: str | dict[str, Any] | None
                 ) -> tuple[Label, np.ndarray | None]:
  """(label, the drawing, or None when there is nothing more to show) for one stroke.

  The label is all the first step returns: the views and the heat map follow in later steps,
  from the drawing kept on the server, so that nothing the label does not need delays it.
  """
  try:
    image = canvas_image(value)
  except preprocess.ImageError as e:
    return str(e), None
  if image is None:
    return DRAW_A_DIGIT, None
  label, view = _classify(predictor, image, "the canvas")
  return label, (image if view is not None else None)  # blank: no number, no second look


def sketch_views(predictor: Predictor, image: np.ndarray | None
                 ) -> tuple[np.ndarray | None, str, np.ndarray | None]:
  """(model input, "Number: ...", the canvas with digit boxes) for sketch_label's drawing."""
  if image is None:
    return None, "", None
  _, view = _classify(predictor, image, "the canvas")
  number = _read_number(predictor, image, "the canvas")
  return view, number_text(number), boxes_view(image, number)


def predict_sketch(predictor: Predictor, value: str | dict[str, Any] | None
                   ) -> tuple[Label, np.ndarray | None, str, np.ndarray | None]:
  """(label, model input, "Number: ...", the canvas with digit boxes) for one stroke."""
  label, image = sketch_label(predictor, value)
  return (label, *sketch_views(predictor, image))


def _upload(payload: dict[str, Any] | str | None) -> tuple[str | None, str, str | None]:
  """(path, name, message): the message says why the upload is not read, else None.

  Uploads arrive unpreprocessed (Gradio's FileData dict), so that a non-image or a huge image
  gets a message here instead of an exception inside Gradio's decoder.
  """
  path = payload if isinstance(payload, str) else (payload or {}).get("path")
  name = Path((payload.get("orig_name") if isinstance(payload, dict) else None) or path or "").name
  if not path:
    return None, name, f"{DRAW_A_DIGIT} or upload an image of one"
  try:
    with Image.open(path) as im:  # reads the header only
      preprocess.check_pixels(*im.size, name)
  except preprocess.ImageError as e:
    return path, name, str(e)
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
    pass  # to_ink names the problem
  return path, name, None


def _unreadable(name: str, e: Exception) -> str:
  # One bad file must not take the server down for everyone.
  detail = " ".join(str(e).split()) or "no detail"
  return f"{name}: could not be read ({type(e).__name__}: {detail})"


def predict_file(predictor: Predictor, payload: dict[str, Any] | str | None
                 ) -> tuple[Label, np.ndarray | None]:
  """(label, model input) for an uploaded file."""
  path, name, message = _upload(payload)
  if message:
    return message, None
  try:
    return _classify(predictor, path, name)
  except Exception as e:  # pylint: disable=broad-except
    return _unreadable(name, e), None


def predict_number(predictor: Predictor, payload: dict[str, Any] | str | None) -> Number:
  """An uploaded file read as a number: NumberReading.to_json(), or a reading with a reason."""
  path, name, message = _upload(payload)
  if message:
    return _no_number(name, message)
  try:
    return _read_number(predictor, path, name)
  except Exception as e:  # pylint: disable=broad-except
    return _no_number(name, _unreadable(name, e))


def show_upload(predictor: Predictor, payload: dict[str, Any] | str | None, number: Number | None
                ) -> tuple[np.ndarray | None, str, np.ndarray | None]:
  """(model input, "Number: ...", the upload with digit boxes), from /predict_number's reading."""
  view = predict_file(predictor, payload)[1]
  if not number or view is None:
    return view, "", None
  try:
    return view, number_text(number), boxes_view(_upload(payload)[0], number)
  except Exception:  # pylint: disable=broad-except
    return view, number_text(number), None


def build(predictor: Predictor) -> gr.Blocks:
  """The app: Sketchpad and Upload tabs, top-3 label, the model's input, a clear button."""
  with gr.Blocks(title="jaxdigits", analytics_enabled=False) as app:
    gr.Markdown("## jaxdigits: draw a digit\nDraw a digit, 0 to 9, or a number, or upload a "
                "picture of one. The prediction updates after each stroke.")
    with gr.Row():
      with gr.Column():
        with gr.Tabs():
          with gr.Tab("Sketchpad"):
            sketch = gr.HTML("", html_template=CANVAS_HTML, css_template=CANVAS_CSS,
                             js_on_load=CANVAS_JS, elem_id="sketchpad")
          with gr.Tab("Upload"):
            upload = gr.Image(label="Digit image", type="filepath", sources=["upload", "clipboard"],
                              elem_id="upload")
        clear = gr.Button("Clear", elem_id="clear")
      with gr.Column():
        label = gr.Label(label="Prediction (top 3)", num_top_classes=3, elem_id="prediction")
        seen = gr.Image(label="What the model sees (28x28)", interactive=False, format="png",
                        elem_id="model-input")
        heat = gr.Image(label="Where the model looked (SmoothGrad, predicted digit)",
                        interactive=False, format="png", elem_id="heat-map")
        number = gr.Markdown(elem_id="number")
        boxes = gr.Image(label="The digits read", interactive=False, format="png",
                         elem_id="number-boxes")
        # /predict_number's output, carried to the step that draws it (never shown as JSON).
        reading = gr.JSON(visible=False)

    # The label first, alone and unqueued (a request, not a queue join and an event stream);
    # the views and the heat map after it, from the drawing kept on the server.
    drawing = gr.State()
    stroke = sketch.change(lambda v: sketch_label(predictor, v), sketch, [label, drawing],
                  api_visibility="private", show_progress="hidden", trigger_mode="always_last",
                  queue=False
                  )
    # "always_last": a step still running for an older stroke defers the newest one instead of
    # dropping it (the default for a chained step), so the views never stay a stroke behind.
    views = stroke.then(lambda im: sketch_views(predictor, im), drawing, [seen, number, boxes],
                        api_visibility="private", show_progress="hidden",
                        trigger_mode="always_last")
    heat_step = views.then(lambda im: heat_view(predictor, im), drawing, heat,
                           api_visibility="private", show_progress="hidden",
                           trigger_mode="always_last")
    # The scripting endpoints: one image in, one Label (/predict) or one number reading
    # (/predict_number) out. The views follow in a last step, drawn from that reading, so each
    # endpoint's output stays plain for gradio_client users and the number is read once.
    upload.change(lambda p: predict_file(predictor, p)[0], upload, label, api_name="predict",
                  preprocess=False, show_progress="hidden").then(
        lambda p: predict_number(predictor, p), upload, reading, api_name="predict_number",
        preprocess=False, show_progress="hidden").then(
        lambda p, r: show_upload(predictor, p, r), [upload, reading], [seen, number, boxes],
        api_visibility="private", preprocess=False, show_progress="hidden").then(
        lambda p: heat_view(predictor, _upload(p)[0] if not _upload(p)[2] else None), upload,
        heat, api_visibility="private", preprocess=False, show_progress="hidden")
    # The canvas is cleared in the page; the next stroke sends the new drawing. Running steps
    # for the old drawing are cancelled, and one still deferred reads the emptied drawing, so
    # that none repaints a view after the clear.
    clear.click(lambda: (None, DRAW_A_DIGIT, None, None, "", None, None), None,
                [upload, label, seen, heat, number, boxes, drawing], js=CLEAR_CANVAS_JS,
                api_visibility="private", queue=False, cancels=[views, heat_step])
  return app


def warm_up(predictor: Predictor) -> None:
  """Compiles the one-image forward pass, the number reader's and the heat map's now, so the
  first user does not wait for them (the heat map's alone takes seconds)."""
  digit = np.zeros((preprocess.MNIST_SIZE, preprocess.MNIST_SIZE), np.uint8)
  digit[6:22, 13:16] = 255
  predictor.probabilities(predictor.prepare(digit)[None])
  canvas = np.full((CANVAS[1], CANVAS[0]), 255, np.uint8)
  canvas[40:240, 270:290] = 0  # a 1, black on white
  sketch_views(predictor, canvas)
  heat_view(predictor, canvas)
