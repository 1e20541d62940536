"""Gradio demo: draw or upload a digit, see the prediction and the 28x28 input the model reads.

  python -m jaxdigits.demo [--checkpoint=MODEL[,MODEL...]] [--host=127.0.0.1] [--port=7860]
      [--share] [--tta] [--runtime=jax|onnx]

Scripting: ``gradio_client.Client(url).predict(handle_file("digit.png"), api_name="/predict")``
returns a Label value: ``{"label": "7", "confidences": [{"label": "7", "confidence": ...}, ...]}``,
or ``{"label": "<message>"}`` when the image cannot be read or holds no digit.
``api_name="/predict_number"`` reads the image as a number, left to right: ``{"file",
"number": "2026", "digits": [{"digit", "probability", "box": [x0, y0, x1, y1]}, ...]}``, or
``"number": None`` with a ``"reason"``.
"""

from __future__ import annotations

import signal
import socket

from absl import flags

import jaxdigits
from jaxdigits.cli import runner
from jaxdigits.errors import ConfigError
from jaxdigits.inference import demo
from jaxdigits.inference import load as load_lib


def _define(fv: flags.FlagValues) -> None:
  flags.DEFINE_multi_string("checkpoint", None, f"{runner.MODELS_HELP} (default: the shipped "
                            "MNIST CNN)", flag_values=fv)
  flags.DEFINE_string("host", "127.0.0.1", "address to bind; 0.0.0.0 exposes the demo to the "
                      "network", flag_values=fv)
  flags.DEFINE_integer("port", 7860, "port to serve on", lower_bound=1, upper_bound=65535,
                       flag_values=fv)
  flags.DEFINE_boolean("share", False, "also open a public gradio.live link (needs the "
                       "internet)", flag_values=fv)
  flags.DEFINE_boolean("tta", False, runner.TTA_HELP, flag_values=fv)
  flags.DEFINE_integer("upload_max_mb", demo.UPLOAD_MAX_BYTES // 2**20, "size cap of the "
                       "demo's upload folder; the oldest files go first", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_float("upload_max_age_s", demo.UPLOAD_MAX_AGE_S, "uploads and served images "
                     "older than this are deleted", lower_bound=1, flag_values=fv)
  flags.DEFINE_enum("runtime", "jax", load_lib.RUNTIMES, load_lib.RUNTIME_HELP, flag_values=fv)


def _check_address(host: str, port: int) -> None:
  # Before the model loads, so a busy port is reported at once and as one line (Gradio
  # would raise an OSError with a traceback after the warm-up).
  with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
    try:
      s.bind((host, port))
    except OSError as e:
      raise ConfigError(f"--host={host} --port={port}: cannot serve there "
                        f"({e.strerror or e}); pick a free --port or stop what holds it"
                        ) from None


def _demo(fv: flags.FlagValues, _: list[str]) -> None:
  _check_address(fv.host, fv.port)
  predictor = jaxdigits.load(runner.model_paths(fv.checkpoint), tta=fv.tta,
                             runtime=fv.runtime)
  demo.warm_up(predictor)  # also refuses a model that cannot read new images (native USPS)
  # SIGTERM (systemd, docker stop, kill) as Ctrl-C: Gradio then closes the server and the
  # upload folder is deleted below; by default SIGTERM ends the process on the spot.
  signal.signal(signal.SIGTERM, _interrupt)
  with demo.upload_folder(fv.upload_max_mb * 2**20, fv.upload_max_age_s) as folder:
    print(f"uploads in {folder} (deleted on exit)", flush=True)
    app = demo.build(predictor)
    app.queue(default_concurrency_limit=2)
    app.launch(server_name=fv.host, server_port=fv.port, share=fv.share, ssr_mode=False,
               max_file_size=demo.MAX_FILE_SIZE, show_error=True)


def _interrupt(*_) -> None:
  raise KeyboardInterrupt


COMMAND = runner.Command("demo", __doc__, _define, _demo)
main = COMMAND.main
run = COMMAND.run

if __name__ == "__main__":
  run()
