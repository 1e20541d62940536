"""k-nearest neighbours in JAX: exact distances batched on the device, then a top-k vote.

uint8 pixels get integer squared distances, exact (no rounding at all), computed on float32
matmuls in slices short enough that every partial sum is an exact integer; float features
(HOG, edges) get float32 distances. Ties between equal distances go to the lower training
index, and vote ties to the smaller label, as in scikit-learn's brute-force
``KNeighborsClassifier``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

# float32 sums of products of values <= 255 are exact integers while below 2^24, i.e. for
# up to 258 terms in any summation order.
EXACT_SLICE = 196
# Extra neighbours taken by rounded distance before ordering them exactly (see _nearest).
SLACK = 16


def vote(neighbour_labels: jax.Array, num_classes: int = 10) -> jax.Array:
  """Vote counts [B, classes]; ``argmax`` breaks ties towards the smaller label."""
  return jax.nn.one_hot(neighbour_labels, num_classes).sum(1)


def _exact_sq_distances(queries: jax.Array, train: jax.Array, train_sq: jax.Array) -> jax.Array:
  """int32 ||q - t||^2 [B, N] of uint8 vectors. XLA:CPU's int32 matmul is ~10x slower than
  its float32 one, hence float32 slices that are each exact, added in int32."""
  dots = 0
  for s in range(0, queries.shape[1], EXACT_SLICE):
    part = (queries[:, s:s + EXACT_SLICE].astype(jnp.float32)
            @ train[:, s:s + EXACT_SLICE].astype(jnp.float32).T)
    dots = dots + part.astype(jnp.int32)
  q = queries.astype(jnp.int32)
  return jnp.sum(q * q, 1)[:, None] + train_sq[None] - 2 * dots


@functools.partial(jax.jit, static_argnames=("k",))
def _nearest_int(queries, train, train_sq, k):
  """The k nearest [B, k] by exact integer distance, and whether that was proven [B].

  XLA:CPU's fast top-k is float32 only, and float32 rounds distances above 2^24. Rounding is
  monotonic, so the true k nearest are among the ``k + SLACK`` smallest rounded distances
  whenever the last of those rounds strictly above the k-th; those are then ordered exactly.
  """
  d = _exact_sq_distances(queries, train, train_sq)
  neg, cand = jax.lax.top_k(-d.astype(jnp.float32), k + SLACK)
  proven = -neg[:, -1] > -neg[:, k - 1]
  cand = jnp.sort(cand, axis=1)
  _, order = jax.lax.sort((jnp.take_along_axis(d, cand, axis=1),
                           jnp.broadcast_to(jnp.arange(cand.shape[1]), cand.shape)),
                          dimension=1, num_keys=2)
  return jnp.take_along_axis(cand, order[:, :k], axis=1), proven


@functools.partial(jax.jit, static_argnames=("k",))
def _nearest_float(queries, train, train_sq, k):
  d = jnp.sum(queries**2, 1)[:, None] + train_sq[None] - 2 * queries @ train.T
  return jax.lax.top_k(-d, k)[1], jnp.ones(len(queries), bool)  # top_k is stable


def _padded(x: np.ndarray, batch: int) -> np.ndarray:
  pad = batch - len(x)
  return np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad > 0 else x


@dataclasses.dataclass
class KNN:
  """The fitted state is the training features and labels, nothing else."""

  k: int
  train: np.ndarray  # [N, F], uint8 (pixels: the exact integer path) or float32
  labels: np.ndarray  # int32 [N]
  batch_size: int = 500

  def __post_init__(self):
    self._train = jnp.asarray(self.train)
    self._labels = jnp.asarray(self.labels)
    if self.train.dtype == np.uint8:
      t = self.train.astype(np.int64)
      self._train_sq = jnp.asarray((t * t).sum(1).astype(np.int32))
      self._nearest = _nearest_int
    else:
      self._train = self._train.astype(jnp.float32)
      self._train_sq = jnp.sum(self._train**2, 1)
      self._nearest = _nearest_float

  def neighbours(self, queries: np.ndarray) -> np.ndarray:
    """Indices [Q, k] of each query's k nearest training points, nearest first."""
    if (queries.dtype == np.uint8) != (self.train.dtype == np.uint8):
      raise ValueError(f"queries are {queries.dtype} but the kNN was fitted on "
                       f"{self.train.dtype} features; use the same features for both")
    out = []
    for s in range(0, len(queries), self.batch_size):
      chunk = queries[s:s + self.batch_size]
      nbrs, proven = self._nearest(jnp.asarray(_padded(chunk, self.batch_size)), self._train,
                                   self._train_sq, self.k)
      if not np.all(np.asarray(proven)[:len(chunk)]):
        raise RuntimeError(f"kNN: more than {SLACK} training points round to the same float32 "
                           "distance as a query's k-th neighbour; raise knn.SLACK")
      out.append(np.asarray(nbrs)[:len(chunk)])
    return np.concatenate(out)

  def scores(self, queries: np.ndarray) -> np.ndarray:
    """Vote counts [Q, 10]; their argmax is the prediction."""
    return np.asarray(vote(self._labels[jnp.asarray(self.neighbours(queries))]))

  def predict(self, queries: np.ndarray) -> np.ndarray:
    return self.scores(queries).argmax(-1)
