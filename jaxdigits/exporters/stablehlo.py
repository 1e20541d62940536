"""StableHLO export with ``jax.export``: the lowered program, serialised, batch symbolic.

The file runs again in any process with a compatible jaxlib (``load_stablehlo``), with no
jaxdigits, Flax or Python model code: the parameters are constants inside it. It is
lowered for the CPU and CUDA at once, so one file serves both.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import export

from jaxdigits import exporters
from jaxdigits.errors import BundleError

PLATFORMS = ("cpu", "cuda")


def to_stablehlo(forward: exporters.Forward, path: str | os.PathLike,
                 input_shape: Sequence[int] = (28, 28, 1),
                 platforms: Sequence[str] = PLATFORMS) -> dict[str, Any]:
  """Writes ``forward`` (see ``exporters.forward_of``) as a serialised ``jax.export``.

  The file is read back and checked against JAX on a probe batch before this returns; the
  result is what the manifest records about it.
  """
  path = Path(path)
  batch, = export.symbolic_shape("N")
  spec = jax.ShapeDtypeStruct((batch, *input_shape), jnp.float32)
  exported = export.export(jax.jit(forward), platforms=tuple(platforms))(spec)
  data = bytes(exported.serialize())
  path.write_bytes(data)
  images = exporters.probe(input_shape)
  gap = exporters.check_close(str(path), load_stablehlo(path)(images),
                              np.asarray(jax.jit(forward)(images)))
  return {"format": "stablehlo", "platforms": list(exported.platforms),
          "calling_convention_version": exported.calling_convention_version,
          "jax": jax.__version__, "bytes": len(data), "probe_max_abs_diff": gap}


@dataclasses.dataclass(frozen=True)
class Loaded:
  """A deserialised export: ``loaded(images float32 [N,H,W,1] in [0,1])`` → logits."""

  path: Path
  exported: export.Exported
  input_shape: tuple[int, int, int]
  run: Callable[[jax.Array], jax.Array]  # jitted: each batch size compiles once

  def __call__(self, images: np.ndarray) -> np.ndarray:
    return np.asarray(self.run(jnp.asarray(images, jnp.float32)))


def _serves_here(platforms: Sequence[str]) -> bool:
  backend = jax.default_backend()
  return backend in platforms or (backend == "gpu" and bool({"cuda", "rocm"} & set(platforms)))


def load_stablehlo(path: str | os.PathLike) -> Loaded:
  """Reads a ``model.stablehlo``; BundleError names the file when it cannot serve here."""
  path = Path(path)
  if not path.is_file():
    raise BundleError(f"{path}: no such file; export it with jaxdigits.exporters.stablehlo")
  try:
    exported = export.deserialize(bytearray(path.read_bytes()))
  # A damaged flatbuffer fails in many ways (struct.error, IndexError, UnicodeDecodeError).
  except Exception as e:  # pylint: disable=broad-except
    raise BundleError(f"{path}: not a serialised jax.export ({type(e).__name__}); the file "
                      "is damaged or truncated: export the model again") from None
  avals = exported.in_avals
  if len(avals) != 1 or len(avals[0].shape) != 4 or not export.is_symbolic_dim(
      avals[0].shape[0]):
    raise BundleError(f"{path}: expected one input [N, H, W, 1] with a symbolic batch, got "
                      f"{[a.str_short() for a in avals]}")
  if not _serves_here(exported.platforms):
    raise BundleError(f"{path}: lowered for {list(exported.platforms)}, but JAX runs on "
                      f"{jax.default_backend()} here; export again with that platform")
  return Loaded(path, exported, tuple(int(d) for d in avals[0].shape[1:]),
                jax.jit(exported.call))
