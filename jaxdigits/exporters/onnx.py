"""ONNX export with jax2onnx, which converts the traced jaxpr (no TensorFlow in between).

The graph takes ``images`` float32 [N, H, W, 1] in [0, 1] with a symbolic batch ``N`` and
gives ``logits`` [N, 10]; parameters are constants in the file. Served by onnxruntime
(``jaxdigits.inference.onnx_runtime``), without JAX.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from jaxdigits import exporters
from jaxdigits.errors import BundleError

# Opset 21 (ONNX 1.16) runs on onnxruntime >= 1.20: older runtimes can still read the file.
OPSET = 21
INPUT, OUTPUT = "images", "logits"
# What the 'onnx' extra installs for exporting: the converter, and the runtime that checks it.
REQUIRES = ("jax2onnx", "onnxruntime")


def unavailable() -> str | None:
  """Why this process cannot export ONNX (a package of the 'onnx' extra is missing), or None."""
  missing = [name for name in REQUIRES if importlib.util.find_spec(name) is None]
  return (f"ONNX export needs {' and '.join(missing)}: pip install 'jaxdigits[onnx]', then "
          f"export again" if missing else None)


def _convert(forward: exporters.Forward, input_shape: Sequence[int], opset: int) -> Any:
  import jax2onnx  # pylint: disable=g-import-not-at-top
  # jax2onnx 0.13 prints debugging lines from its Flax Conv plugin, logs (with tracebacks)
  # each plugin it skips because it does not import under this JAX (dm_pix ones, unused
  # here), and onnx_ir warns about untyped shape constants it drops: none is news to a user.
  loggers = [logging.getLogger(name) for name in ("jax2onnx", "onnx_ir")]
  levels = [log.level for log in loggers]
  for log in loggers:
    log.setLevel(logging.ERROR)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      return jax2onnx.to_onnx(forward, [("N", *input_shape)], model_name="jaxdigits",
                              opset=opset, input_names=[INPUT], output_names=[OUTPUT])
  # jax2onnx fails on what it cannot translate in many ways (NotImplementedError for a
  # primitive, shape errors under the symbolic batch): all mean this model has no ONNX form.
  except Exception as e:  # pylint: disable=broad-except
    first = str(e).splitlines()[0] if str(e) else ""
    raise BundleError(f"jax2onnx {metadata.version('jax2onnx')} cannot convert this model "
                      f"({type(e).__name__}: {first}); its StableHLO export still works") from e
  finally:
    for log, level in zip(loggers, levels):
      log.setLevel(level)


def to_onnx(forward: exporters.Forward, path: str | os.PathLike,
            input_shape: Sequence[int] = (28, 28, 1), opset: int = OPSET) -> dict[str, Any]:
  """Writes ``forward`` (see ``exporters.forward_of``) as an ONNX file.

  The file is checked against JAX on a probe batch through onnxruntime before this returns;
  the result is what the manifest records about it.
  """
  missing = unavailable()
  if missing:
    raise BundleError(missing)
  import onnxruntime  # pylint: disable=g-import-not-at-top
  path = Path(path)
  proto = _convert(forward, input_shape, opset)
  # jax2onnx 0.13 annotates some intermediate values of strided convolutions with NCHW
  # shapes of NHWC tensors; runtimes infer those shapes anyway, and onnxruntime warns about
  # each wrong one, so only the inputs' and outputs' shapes are kept.
  del proto.graph.value_info[:]
  data = proto.SerializeToString()
  path.write_bytes(data)
  options = onnxruntime.SessionOptions()
  options.log_severity_level = 3
  session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
  images = exporters.probe(input_shape)
  gap = exporters.check_close(str(path), session.run([OUTPUT], {INPUT: images})[0],
                              np.asarray(jax.jit(forward)(images)))
  return {"format": "onnx", "opset": opset, "input": INPUT, "output": OUTPUT,
          "jax2onnx": metadata.version("jax2onnx"), "bytes": len(data),
          "probe_max_abs_diff": gap}
