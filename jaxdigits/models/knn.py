"""k-nearest neighbours in JAX, exact, with a PCA lower bound that prunes most distances.

Float features (HOG, edges) get float32 distances to every training point and a top-k.

uint8 pixels get exact integer distances, ties between equal distances going to the lower
training index and vote ties to the smaller label (as scikit-learn's brute-force
``KNeighborsClassifier`` on float inputs; on uint8 inputs it takes np.argpartition's arbitrary
order among exactly equal distances), without computing most of the 784-dimensional distances.
The index, derived from the training images alone (nothing is saved beyond them), holds an
orthonormal PCA basis ``P`` (``d`` columns) and each training point's embedding
``e(t) = [P^T(t - m), |R(t - m)|]`` (R: the projection on the rest, m: the mean), whose squared
distances are lower bounds of the true ones:

    |x - t|^2 = |P^T(x - t)|^2 + |R(x - t)|^2 >= |P^T(x - t)|^2 + (|R(x - m)| - |R(t - m)|)^2
              = |e(x) - e(t)|^2

The training points are split into groups of ``GROUP`` close points (the leaves of a k-d split
of the embeddings), and a batch of queries is answered in passes:

1. One float32 matmul against every training embedding gives each group's smallest bound.
2. Probes: exact distances to the ``PICKS`` points of smallest bound in a few groups of small
   bound. Their k-th smallest, ``tau``, is >= the k-th nearest neighbour's distance.
3. Only groups whose smallest bound is <= ``tau`` can hold a neighbour. Their members' bounds
   are computed again, members with a bound <= ``tau`` get exact integer distances, and the
   k smallest of those (distance, then index) are the answer.

Every point left out has a bound > ``tau`` >= the k-th neighbour's distance: it is farther than
the k found, so the answer is exact, for every query. The float32 bounds are lowered by
``GUARD`` times the embeddings' squared norms, 8x what float32 rounding can move them by.
A query with more than ``max_groups`` candidate groups (an image far from all training images)
takes the dense path instead: exact distances to every training point.

On MNIST (60,000 x 784, k = 3) with d = 64, a test image has ~41 candidate groups and ~100
exact distances (16 of them probes) instead of 60,000, and 1 in 10,000 takes the dense path;
the first pass's matmul (66 of 784 dimensions) is most of the time.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
# Single-threaded BLAS for the float64 work here: on a busy machine, two OpenBLAS threads
# waiting on each other made a 784 x 784 eigh take seconds instead of 0.1 s.
from threadpoolctl import threadpool_limits

# float32 sums of products of values <= 255 are exact integers while below 2^24, i.e. for
# up to 258 terms in any summation order.
EXACT_SLICE = 196
PCA_DIMS = 64
GROUP = 16  # training points per group (the first pass keeps each group's smallest bound)
BLOCK = 2048  # training points per matmul of the first pass: a multiple of GROUP
PROBES = 4  # groups whose members give the first exact distances...
PICKS = 16  # ...to this many of their members (k + 5 if more)
# The bounds are lowered by GUARD * (|e(q)|^2 + |e(t)|^2). float32 rounding (of the terms, the
# (d + 2)-term dot product and tau - |e(q)|^2) moves them by less than
# ((d + 2) * 2 + 8) * 2^-24 * (|e(q)|^2 + |e(t)|^2) < 1.3e-5 * (|e(q)|^2 + |e(t)|^2).
GUARD = 1e-4
MAX_GROUPS = 1024  # candidate groups above which a query takes the dense path
_QUERY_CHUNK = 50  # queries per slice of the probes (batch sizes are padded to a multiple)
_PAIR_CHUNK = 2048  # (query, group) or (query, point) pairs per slice of the later passes
_FAR = 1e30  # the bound term of padding slots: never a candidate
_INT_FAR = np.iinfo(np.int32).max


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


_dense_int = jax.jit(_exact_sq_distances)


def _pair_sq_distances(a: jax.Array, b: jax.Array) -> jax.Array:
  """int32 ||a - b||^2 along the last axis of uint8 arrays (exact: at most 784 * 255^2)."""
  diff = a.astype(jnp.int32) - b.astype(jnp.int32)
  sq = diff * diff
  if sq.shape[-1] % 16 == 0:  # two-step sum: XLA:CPU vectorizes it better
    sq = sq.reshape(*sq.shape[:-1], -1, 16).sum(-1)
  return jnp.sum(sq, -1)


def _in_chunks(fn, chunk: int, *arrays):
  """``fn`` over slices of ``chunk`` rows of ``arrays`` (lengths a multiple of ``chunk``),
  concatenated. Small slices keep gathered temporaries in cache and their buffers reused,
  ~7x faster on XLA:CPU than one gather of everything."""
  parts = jax.lax.map(lambda xs: fn(*xs), tuple(a.reshape(-1, chunk, *a.shape[1:])
                                                for a in arrays))
  return parts.reshape(-1, *parts.shape[2:])


@functools.partial(jax.jit, static_argnames=("picks", "groups_per_block", "probes"))
def _first_pass(qhat, qsq, queries, blocks, embedded, members, train, k, picks,
                groups_per_block, probes):
  """Per query: each group's smallest bound, ``tau`` from the probes, the candidate groups.

  qhat [B, D]: ``[-2 * embedding, 1]``; qsq [B]: ``(1 - GUARD) * |embedding|^2``; blocks
  [nb, BLOCK, D]: ``[embedding, (1 - GUARD) * |embedding|^2]`` of the training points, laid out
  so that group ``j * W + w`` of block j holds slots ``w, w + W, ...`` (W = groups_per_block).
  """
  b = qhat.shape[0]

  def block_minima(block):
    s = qhat @ block.T  # [B, BLOCK]: guarded bound minus qsq
    return s.reshape(b, -1, groups_per_block).min(1)

  minima = jax.lax.map(block_minima, blocks)  # [nb, B, W]
  minima = jnp.moveaxis(minima, 0, 1).reshape(b, -1)  # [B, groups]
  # Probes: the best group of each of the `probes` best runs of 16 consecutive groups; of
  # their members, the `picks` (>= k) with the smallest bounds get exact distances.
  runs = minima.reshape(b, -1, 16)
  _, best_runs = jax.lax.top_k(-runs.min(-1), probes)
  best = jnp.take_along_axis(runs.argmin(-1), best_runs, 1) + 16 * best_runs  # [B, probes]
  bounds = jnp.einsum("bpgd,bd->bpg", embedded[best], qhat).reshape(b, -1)
  _, pick = jax.lax.top_k(-bounds, min(picks, bounds.shape[1]))
  idx = jnp.take_along_axis(members[best].reshape(b, -1), pick, 1)  # -1 for padding
  d = _in_chunks(lambda q, i: _pair_sq_distances(q[:, None], train[jnp.maximum(i, 0)]),
                 _QUERY_CHUNK, queries, idx)
  d = jnp.where(idx >= 0, d, _INT_FAR)
  tau = jnp.sort(d, 1)[:, k - 1]
  threshold = tau.astype(jnp.float32) - qsq
  candidate = minima <= threshold[:, None]
  return candidate, threshold, candidate.sum(1)


@jax.jit
def _member_bounds(qhat, threshold, rows, groups, embedded):
  """Which members of the (query row, group) pairs have a bound <= the row's tau [P, GROUP]."""
  def bounds(r, g):
    s = jnp.einsum("pgd,pd->pg", embedded[g], qhat[r])
    return s <= threshold[r][:, None]
  return _in_chunks(bounds, _PAIR_CHUNK, rows, groups)


@jax.jit
def _candidate_distances(queries, rows, train, idx):
  return _in_chunks(lambda r, i: _pair_sq_distances(queries[r], train[i]), _PAIR_CHUNK,
                    rows, idx)


@functools.partial(jax.jit, static_argnames=("k",))
def _nearest_float(queries, train, train_sq, k):
  d = jnp.sum(queries**2, 1)[:, None] + train_sq[None] - 2 * queries @ train.T
  return jax.lax.top_k(-d, k)[1]  # top_k is stable: equal distances keep the lower index


def _padded(x: np.ndarray, size: int) -> np.ndarray:
  pad = size - len(x)
  return np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad > 0 else x


def _bucket(n: int) -> int:
  """A padded length for ragged calls: _PAIR_CHUNK times 1, 2, 3, 4, 6, 8, 12, 16, ... (few
  shapes to compile, at most 1.5x the work)."""
  m = max(1, -(-n // _PAIR_CHUNK))
  p = 1 << (m - 1).bit_length()
  return (3 * p // 4 if p >= 4 and 3 * p // 4 >= m else p) * _PAIR_CHUNK


def _k_smallest(rows: np.ndarray, dist: np.ndarray, idx: np.ndarray, num_rows: int, k: int
                ) -> np.ndarray:
  """Per row, the indices of the k smallest (distance, index) pairs [num_rows, k]."""
  counts = np.bincount(rows, minlength=num_rows)
  if np.any(counts < k):
    raise AssertionError("kNN: a query has fewer than k candidates; the lower bound is broken")
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[:, None] + np.arange(k)
  dist_bits = int(dist.max(initial=0)).bit_length()
  idx_bits = int(idx.max(initial=0)).bit_length()
  if num_rows.bit_length() + dist_bits + idx_bits <= 63:  # one int64 sort key: ~2x faster
    key = (((rows.astype(np.int64) << dist_bits) | dist) << idx_bits) | idx
    return np.sort(key)[starts] & ((1 << idx_bits) - 1)
  return idx[np.lexsort((idx, dist, rows))][starts]


def _kd_groups(points: np.ndarray, group: int) -> list[np.ndarray]:
  """Indices of ``points`` in groups of ``group`` (the last one shorter): the leaves of a
  k-d split at the median of the widest coordinate, in leaf order (nearby groups are close)."""
  leaves, stack = [], [np.arange(len(points))]
  while stack:
    idx = stack.pop()
    if len(idx) <= group:
      leaves.append(idx)
      continue
    sub = points[idx]
    idx = idx[np.argsort(sub[:, np.argmax(sub.max(0) - sub.min(0))], kind="stable")]
    half = max(group, round(len(idx) / 2 / group) * group)
    stack += [idx[half:], idx[:half]]
  return leaves


class _PixelIndex:
  """The pruning index of uint8 training vectors; built from them deterministically."""

  def __init__(self, train: np.ndarray, dims: int = PCA_DIMS):
    train = np.ascontiguousarray(train)
    n, f = train.shape
    dims = min(dims, f)
    self.mean = train.mean(0, dtype=np.float64)
    # The basis only needs to be orthonormal: its float32 covariance (of at most 16,384 evenly
    # spaced points) only chooses it, and float64 eigh makes it orthonormal to ~1e-15.
    sample = jnp.asarray(train[::max(1, n // 16384)]).astype(jnp.float32)
    sample = sample - sample.mean(0)
    cov = np.asarray(sample.T @ sample, np.float64)
    with threadpool_limits(1):
      self.basis = np.linalg.eigh(cov)[1][:, ::-1][:, :dims].copy()
    emb = self.embed(train)  # [n, dims + 1] float64
    groups = _kd_groups(emb[:, :16], GROUP)
    per_block = BLOCK // GROUP
    num_groups = -(-len(groups) // per_block) * per_block
    self.members = np.full((num_groups, GROUP), -1, np.int32)
    for g, idx in enumerate(groups):
      self.members[g, :len(idx)] = idx
    rows = np.zeros((num_groups, GROUP, dims + 2))
    rows[..., -1] = _FAR
    real = self.members >= 0
    e = emb[self.members[real]]
    rows[real] = np.concatenate([e, (1 - GUARD) * (e * e).sum(1, keepdims=True)], 1)
    rows = rows.astype(np.float32)
    self.embedded = jnp.asarray(rows)  # [groups, GROUP, D]: the members of each group
    nb = num_groups // per_block
    self.blocks = jnp.asarray(  # [nb, BLOCK, D]: slot g * W + w of block j is member g of j*W+w
        rows.reshape(nb, per_block, GROUP, -1).transpose(0, 2, 1, 3).reshape(nb, BLOCK, -1))
    self.groups_per_block = per_block
    self.jmembers = jnp.asarray(self.members)

  def embed(self, x: np.ndarray) -> np.ndarray:
    """``[P^T(x - mean), |residual|]`` in float64, in slices to bound the memory."""
    out = [np.zeros((0, self.basis.shape[1] + 1))]
    with threadpool_limits(1):
      for s in range(0, len(x), 8192):
        xc = x[s:s + 8192].astype(np.float64) - self.mean
        p = xc @ self.basis
        r = np.einsum("ij,ij->i", xc, xc) - np.einsum("ij,ij->i", p, p)
        out.append(np.concatenate([p, np.sqrt(np.maximum(r, 0))[:, None]], 1))
    return np.concatenate(out)

  def lower_bounds(self, queries: np.ndarray) -> np.ndarray:
    """The guarded float32 lower bounds of ||q - t||^2 [Q, N], from the same float32 terms as
    the search (for tests: every entry must be <= the exact distance)."""
    qhat, qsq = self.query_terms(queries)
    real = self.members >= 0
    emb = np.asarray(self.embedded)[real]
    s = np.asarray(jnp.asarray(qhat) @ jnp.asarray(emb).T)
    out = np.empty((len(queries), real.sum()), np.float32)
    out[:, self.members[real]] = s + qsq[:, None]
    return out

  @staticmethod
  def query_terms_from(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    qhat = np.concatenate([-2 * emb, np.ones((len(emb), 1))], 1).astype(np.float32)
    return qhat, ((1 - GUARD) * (emb * emb).sum(1)).astype(np.float32)

  def query_terms(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return self.query_terms_from(self.embed(queries))


@dataclasses.dataclass
class KNN:
  """The fitted state is the training features and labels, nothing else (the pruning index of
  uint8 pixels is rebuilt from them)."""

  k: int
  train: np.ndarray  # [N, F], uint8 (pixels: the exact integer path) or float32
  labels: np.ndarray  # int32 [N]
  batch_size: int = 500
  max_groups: int = MAX_GROUPS  # candidate groups above which a query takes the dense path

  def __post_init__(self):
    if not 1 <= self.k <= len(self.train):
      raise ValueError(f"k={self.k} needs 1 <= k <= {len(self.train)} training points")
    self._train = jnp.asarray(self.train)
    self._labels = jnp.asarray(self.labels)
    self.dense_queries = 0  # how many queries took the dense path (for tests and benchmarks)
    if self.train.dtype == np.uint8:
      t = self.train.astype(np.int64)
      self._train_sq = jnp.asarray((t * t).sum(1).astype(np.int32))
      self._index = _PixelIndex(self.train)
    else:
      self._train = self._train.astype(jnp.float32)
      self._train_sq = jnp.sum(self._train**2, 1)
      self._index = None

  def neighbours(self, queries: np.ndarray) -> np.ndarray:
    """Indices [Q, k] of each query's k nearest training points, nearest first."""
    if (queries.dtype == np.uint8) != (self.train.dtype == np.uint8):
      raise ValueError(f"queries are {queries.dtype} but the kNN was fitted on "
                       f"{self.train.dtype} features; use the same features for both")
    out, dense = [], []
    for s in range(0, len(queries), self.batch_size):
      chunk = queries[s:s + self.batch_size]
      if self._index is None:
        nbrs = _nearest_float(jnp.asarray(_padded(chunk, self.batch_size)), self._train,
                              self._train_sq, self.k)
        out.append(np.asarray(nbrs)[:len(chunk)])
      else:
        nbrs, rows = self._nearest_pixels(chunk)
        out.append(nbrs)
        dense.append(s + rows)
    out = np.concatenate(out) if out else np.zeros((0, self.k), np.int64)
    dense = np.concatenate(dense) if dense else np.zeros(0, np.int64)
    if len(dense):
      out[dense] = self._dense(queries[dense])
    return out

  def _nearest_pixels(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours [n, k] of the pruned search, and the rows left to the dense path."""
    ix, n, k = self._index, len(chunk), self.k
    qhat, qsq = ix.query_terms(chunk)
    # Padded to a multiple of _QUERY_CHUNK: the full batch, or for a short last batch the
    # smallest of 50 * 2^j (so that few shapes are compiled).
    full = -(-self.batch_size // _QUERY_CHUNK) * _QUERY_CHUNK
    size = min(full, _QUERY_CHUNK << max(0, (-(-n // _QUERY_CHUNK) - 1).bit_length()))
    qhat, qsq = jnp.asarray(_padded(qhat, size)), jnp.asarray(_padded(qsq, size))
    queries = jnp.asarray(_padded(chunk, size))
    candidate, threshold, counts = _first_pass(
        qhat, qsq, queries, ix.blocks, ix.embedded, ix.jmembers, self._train, k,
        picks=max(PICKS, k + 5), groups_per_block=ix.groups_per_block,
        probes=min(PROBES, ix.members.shape[0] // 16))
    counts = np.asarray(counts)[:n]
    dense = np.flatnonzero(counts > self.max_groups)
    rows, groups = np.nonzero(np.asarray(candidate)[:n])
    if len(dense):
      keep = counts[rows] <= self.max_groups
      rows, groups = rows[keep], groups[keep]
    # Members of the candidate groups with a bound <= tau.
    order = np.argsort(groups, kind="stable")  # gathers of nearby groups are ~2x faster
    rows, groups = rows[order], groups[order]
    cand_rows, cand_idx = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for s in range(0, len(rows), 1 << 16):
      r, g = rows[s:s + (1 << 16)], groups[s:s + (1 << 16)]
      p = _bucket(len(r))
      ok = _member_bounds(qhat, threshold, jnp.asarray(_padded(r, p).astype(np.int32)),
                          jnp.asarray(_padded(g, p).astype(np.int32)), ix.embedded)
      pair, slot = np.nonzero(np.asarray(ok)[:len(r)])
      cand_rows.append(r[pair])
      cand_idx.append(ix.members[g[pair], slot].astype(np.int64))
    rows, idx = np.concatenate(cand_rows), np.concatenate(cand_idx)
    order = np.argsort(idx, kind="stable")  # gathers in training order are ~1.5x faster
    rows, idx = rows[order], idx[order]
    dist = self._pair_distances(queries, rows, idx)
    out = np.zeros((n, k), np.int64)
    sparse = np.ones(n, bool)
    sparse[dense] = False
    if sparse.any():  # the rows of the dense path have no candidates here: leave them out
      remap = np.cumsum(sparse) - 1
      out[sparse] = _k_smallest(remap[rows], dist, idx, int(sparse.sum()), k)
    return out, dense

  def _dense(self, queries: np.ndarray) -> np.ndarray:
    """Exact distances to every training point, then the k smallest (distance, index)."""
    self.dense_queries += len(queries)
    n = len(self.train)
    if len(queries) <= 8:  # a few queries: as pairs with every training point
      rows = np.repeat(np.arange(len(queries)), n)
      idx = np.tile(np.arange(n), len(queries))
      return _k_smallest(rows, self._pair_distances(jnp.asarray(queries), rows, idx), idx,
                         len(queries), self.k)
    out = []
    for s in range(0, len(queries), 64):
      q = queries[s:s + 64]
      d = np.asarray(_dense_int(jnp.asarray(_padded(q, 64)), self._train, self._train_sq))
      for row in d[:len(q)]:
        kth = np.partition(row, self.k - 1)[self.k - 1]
        idx = np.flatnonzero(row <= kth)
        out.append(idx[np.lexsort((idx, row[idx]))][:self.k])
    return np.stack(out)

  def _pair_distances(self, queries: jax.Array, rows: np.ndarray, idx: np.ndarray
                      ) -> np.ndarray:
    """Exact int32 ||queries[rows] - train[idx]||^2, in calls of a few padded sizes."""
    dist = [np.zeros(0, np.int32)]
    for s in range(0, len(rows), 1 << 17):
      r, i = rows[s:s + (1 << 17)], idx[s:s + (1 << 17)]
      p = _bucket(len(r))
      dist.append(np.asarray(_candidate_distances(
          queries, jnp.asarray(_padded(r, p).astype(np.int32)), self._train,
          jnp.asarray(_padded(i, p).astype(np.int32))))[:len(r)])
    return np.concatenate(dist)

  def scores(self, queries: np.ndarray) -> np.ndarray:
    """Vote counts [Q, 10]; their argmax is the prediction."""
    return np.asarray(vote(self._labels[jnp.asarray(self.neighbours(queries))]))

  def predict(self, queries: np.ndarray) -> np.ndarray:
    return self.scores(queries).argmax(-1)
