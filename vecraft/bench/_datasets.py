"""Benchmark data: clustered synthetic vectors, metadata, exact ground truth, recall.

Uniform random vectors make every neighbour equally far and every index look
bad (or, at low dimension, trivially good); real embeddings are clustered. The
synthetic set is a Gaussian mixture with a fixed seed: ``clusters`` centres
drawn from N(0, I), points = centre + ``spread`` * N(0, I). Queries come from
the same mixture (a different random stream), so each has real neighbours.

Metadata: ``category`` is uniform over 0..9, so ``{"category": c}`` keeps about
10% of the records (the peers benchmark's filtered search); ``num`` is uniform
over 0..99 for range filters.

Ground truth is exact top-k by brute force in numpy, in query batches so the
score matrix stays within a few hundred MB at any scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRICS = ("cosine", "l2", "ip")
#: Values of the ``category`` metadata field; one value selects ~1/CATEGORIES.
CATEGORIES = 10
#: Score-matrix cells per ground-truth batch (~256 MB of float64).
_GT_BATCH_CELLS = 32_000_000


@dataclass(slots=True)
class Dataset:
    """Base vectors with ids and metadata columns, plus the query set."""

    name: str
    metric: str
    vectors: np.ndarray  # (n, dim) float32
    queries: np.ndarray  # (q, dim) float32
    category: np.ndarray  # (n,) int64
    num: np.ndarray  # (n,) int64
    source: str = "synthetic"
    #: Centres of the mixture (empty for non-synthetic data); used to place writer vectors.
    centers: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def ids(self, start: int = 0, stop: int | None = None) -> list[str]:
        """String ids of rows ``start:stop`` (``v<row>``)."""
        stop = self.n if stop is None else stop
        return [f"v{i}" for i in range(start, stop)]

    def metadatas(self, start: int = 0, stop: int | None = None) -> list[dict[str, int]]:
        stop = self.n if stop is None else stop
        return [{"category": int(c), "num": int(x)}
                for c, x in zip(self.category[start:stop], self.num[start:stop], strict=True)]


def gaussian_mixture(n: int, dim: int, *, queries: int, clusters: int = 100, spread: float = 0.6,
                     metric: str = "cosine", seed: int = 42) -> Dataset:
    """A clustered synthetic data set with ``n`` base vectors and ``queries`` query vectors.

    Args:
        spread: noise scale relative to the centres' N(0, I); 0.6 gives clusters
            that are distinct but overlap at their edges, so an approximate index
            has real work to do.
        seed: the same seed gives the same vectors, metadata and queries.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim), dtype=np.float32)
    base = _sample(rng, centers, n, spread)
    category = rng.integers(0, CATEGORIES, size=n)
    num = rng.integers(0, 100, size=n)
    qrng = np.random.default_rng(seed + 1)
    qs = _sample(qrng, centers, queries, spread)
    return Dataset(name=f"gmm-{n}x{dim}", metric=metric, vectors=base, queries=qs,
                   category=category, num=num, centers=centers)


def _sample(rng: np.random.Generator, centers: np.ndarray, n: int, spread: float) -> np.ndarray:
    which = rng.integers(0, centers.shape[0], size=n)
    noise = rng.standard_normal((n, centers.shape[1]), dtype=np.float32)
    out = centers[which] + np.float32(spread) * noise
    return np.ascontiguousarray(out, dtype=np.float32)


def outlier_vectors(data: Dataset, n: int, *, seed: int) -> np.ndarray:
    """Vectors that never enter any query's top-k: for the background writer.

    The writer keeps the replicas lagging during a read benchmark; its vectors
    must not change the ground truth. Under cosine, a point near ``-centre``
    has similarity about 0 with the queries of every other cluster and -1 with
    those of its own, far below a query's own-cluster neighbours (~0.7), so the
    exact top-10 of every query stays as computed.
    """
    rng = np.random.default_rng(seed)
    if data.centers.size:
        return -_sample(rng, data.centers, n, 0.1 * 0.6)
    # Non-synthetic data (text embeddings): the mirror image of random base rows.
    rows = data.vectors[rng.integers(0, data.n, size=n)]
    return np.ascontiguousarray(-rows, dtype=np.float32)


def _normalized(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, metric: str,
               mask: np.ndarray | None = None) -> np.ndarray:
    """Row indices of the exact ``k`` nearest base rows of each query, best first.

    Args:
        mask: optional (n,) bool of the rows a (filtered) search may return;
            queries with fewer than ``k`` allowed rows get ``-1`` padding.

    Returns:
        (q, k) int64.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    b = base.astype(np.float32, copy=False)
    qs = queries.astype(np.float32, copy=False)
    if metric == "cosine":
        b, qs = _normalized(b), _normalized(qs)
    allowed = np.arange(b.shape[0]) if mask is None else np.flatnonzero(mask)
    b = b[allowed]
    b_sq = (b * b).sum(axis=1) if metric == "l2" else None
    out = np.full((qs.shape[0], k), -1, dtype=np.int64)
    kk = min(k, b.shape[0])
    if kk == 0:
        return out
    step = max(1, _GT_BATCH_CELLS // max(1, b.shape[0]))
    for lo in range(0, qs.shape[0], step):
        q = qs[lo:lo + step]
        # Higher is better for every metric: similarity, or minus the squared distance.
        score = q @ b.T
        if b_sq is not None:
            score = 2.0 * score - b_sq[None, :]
        part = np.argpartition(-score, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(score, part, axis=1), axis=1, kind="stable")
        out[lo:lo + step, :kk] = allowed[np.take_along_axis(part, order, axis=1)]
    return out


def filtered_truth(data: Dataset, k: int) -> np.ndarray:
    """Exact top-k of query ``i`` among the rows with ``category == i % CATEGORIES``."""
    out = np.full((len(data.queries), k), -1, dtype=np.int64)
    for c in range(CATEGORIES):
        out[c::CATEGORIES] = exact_topk(data.vectors, data.queries[c::CATEGORIES], k, data.metric,
                                        mask=data.category == c)
    return out


def recall_at_k(found: list[list[str]], truth: np.ndarray, ids: list[str] | None = None) -> float:
    """Mean share of each query's true top-k that the answer contains.

    Args:
        found: the ids each answer returned (at most k used).
        truth: (q, k) row indices from :func:`exact_topk` (-1 = no such row).
        ids: id of each base row; default ``v<row>``.
    """
    if len(found) != truth.shape[0]:
        raise ValueError(f"{len(found)} answers for {truth.shape[0]} queries")
    k = truth.shape[1]
    total = 0.0
    counted = 0
    for got, row in zip(found, truth, strict=True):
        expected = {(ids[r] if ids is not None else f"v{r}") for r in row if r >= 0}
        if not expected:
            continue
        total += len(expected.intersection(got[:k])) / len(expected)
        counted += 1
    return total / counted if counted else float("nan")
