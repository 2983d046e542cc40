"""W2 estimators: exact OT (POT, float64, host-side), 1-D quantiles, sliced, Gaussian closed form.

Every function returns a :class:`W2` carrying the estimator's name (MATH.md §5).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bolt.errors import BoltError

__all__ = ["W2", "w2_debiased", "w2_exact", "w2_quantile_1d", "w2_sliced", "w2_gaussian", "w2_squared", "check_samples"]

#: POT's exact solver iteration cap; POT's default (1e5) silently returns a non-optimal plan at n ≈ 2000.
NUM_ITER_MAX = 10_000_000


class W2(NamedTuple):
    """A W2² value, how it was estimated, and (exact OT) the optimal plan."""

    w2_squared: float
    estimator: str
    plan: np.ndarray | None = None

    @property
    def w2(self) -> float:
        return float(np.sqrt(max(self.w2_squared, 0.0)))


def check_samples(x, name: str, weights=None):
    """Validate a ``(n, d)`` sample set (and optional non-negative weights summing to one)."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise BoltError(f"{name}: expected an (n, d) array, got shape {x.shape}")
    if x.shape[0] == 0:
        raise BoltError(f"{name}: empty sample set")
    if not np.all(np.isfinite(x)):
        raise BoltError(f"{name}: contains NaN or inf")
    if weights is None:
        return x, np.full(x.shape[0], 1.0 / x.shape[0])
    w = np.asarray(weights, np.float64)
    if w.shape != (x.shape[0],):
        raise BoltError(f"{name} weights: expected shape ({x.shape[0]},), got {w.shape}")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise BoltError(f"{name} weights: must be finite and non-negative")
    s = w.sum()
    if s <= 0:
        raise BoltError(f"{name} weights: sum to zero")
    return x, w / s


def _pair(x, y, wx, wy):
    x, wx = check_samples(x, "x", wx)
    y, wy = check_samples(y, "y", wy)
    if x.shape[1] != y.shape[1]:
        raise BoltError(f"samples: dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    return x, y, wx, wy


def w2_exact(x, y, wx=None, wy=None, *, return_plan: bool = False) -> W2:
    """Exact W2² between weighted sample sets by POT's network simplex (float64, host-side).

    Raises :class:`BoltError` when POT reports anything but an optimal solution.
    """
    import ot

    x, y, wx, wy = _pair(x, y, wx, wy)
    M = ot.dist(x, y, metric="sqeuclidean")
    plan, log = ot.emd(wx, wy, M, numItermax=NUM_ITER_MAX, log=True)
    if log.get("result_code", 1) != 1:
        raise BoltError(f"W2: POT's exact solver did not reach an optimum: {log.get('warning')}")
    return W2(float(np.sum(plan * M)), "exact OT (POT emd)", plan if return_plan else None)


def w2_quantile_1d(x, y, wx=None, wy=None) -> W2:
    """Exact W2² between 1-D (weighted) samples via their quantile functions."""
    x, y, wx, wy = _pair(x, y, wx, wy)
    if x.shape[1] != 1:
        raise BoltError("w2_quantile_1d: samples must be 1-D")
    ix, iy = np.argsort(x[:, 0]), np.argsort(y[:, 0])
    xs, ys = x[ix, 0], y[iy, 0]
    cx, cy = np.cumsum(wx[ix]), np.cumsum(wy[iy])
    t = np.unique(np.concatenate([[0.0], cx, cy]))
    t = t[t <= 1.0]
    mid = 0.5 * (t[1:] + t[:-1])
    qx = xs[np.minimum(np.searchsorted(cx, mid), len(xs) - 1)]
    qy = ys[np.minimum(np.searchsorted(cy, mid), len(ys) - 1)]
    return W2(float(np.sum(np.diff(t) * (qx - qy) ** 2)), "1-D quantiles")


def w2_sliced(x, y, wx=None, wy=None, *, n_projections: int = 200, seed: int = 0) -> W2:
    """Sliced W2² (mean over random directions of 1-D W2²). A lower bound on W2², not W2² itself."""
    x, y, wx, wy = _pair(x, y, wx, wy)
    rng = np.random.default_rng(seed)
    th = rng.normal(size=(n_projections, x.shape[1]))
    th /= np.linalg.norm(th, axis=1, keepdims=True)
    vals = [w2_quantile_1d(x @ t, y @ t, wx, wy).w2_squared for t in th]
    return W2(float(np.mean(vals)), f"sliced ({n_projections} projections)")


def w2_gaussian(mean, cov, tau: float) -> W2:
    """Closed form W2²(N(m, S), N(0, τI)) = |m|² + tr S + dτ − 2√τ tr S^{1/2}."""
    from bolt.testing import gaussian_w2_squared

    return W2(gaussian_w2_squared(mean, cov, tau), "Gaussian closed form")


def w2_debiased(x, y, *, max_exact: int = 5000) -> tuple[W2, float]:
    """Split-sample debiased W2² between iid samples: ``cross − self`` with halves,

    ``cross = ½[W2²(x₁, y₁) + W2²(x₂, y₂)]``, ``self = ½[W2²(x₁, x₂) + W2²(y₁, y₂)]``.

    Empirical W2² is biased upwards by a term that, for nearby laws, is nearly the same for every
    pair of samples of the same size; subtracting the within-law W2² removes it to first order
    (the idea of the Sinkhorn divergence). Returns the estimate and a rough standard error from
    the two splits. Heuristic: it can be slightly negative when the laws coincide.
    """
    x, _ = check_samples(x, "x")
    y, _ = check_samples(y, "y")
    h = min(len(x), len(y)) // 2
    if h < 2:
        raise BoltError("w2_debiased: needs at least 4 samples per set")
    x1, x2, y1, y2 = x[:h], x[h:2 * h], y[:h], y[h:2 * h]
    f = lambda a, b: w2_squared(a, b, max_exact=max_exact)
    c1, c2 = f(x1, y1), f(x2, y2)
    s1, s2 = f(x1, x2).w2_squared, f(y1, y2).w2_squared
    val = 0.5 * (c1.w2_squared + c2.w2_squared) - 0.5 * (s1 + s2)
    se = float(np.hypot(abs(c1.w2_squared - c2.w2_squared) / 2, abs(s1 - s2) / 2))
    return W2(float(val), f"split-sample debiased ({c1.estimator})"), se


def w2_squared(x, y, wx=None, wy=None, *, max_exact: int = 5000) -> W2:
    """W2² with the best estimator for the size: 1-D quantiles, exact OT up to ``max_exact`` points, else sliced."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1 or x.shape[1] == 1:
        return w2_quantile_1d(x, y, wx, wy)
    if max(len(x), len(np.asarray(y))) <= max_exact:
        return w2_exact(x, y, wx, wy)
    return w2_sliced(x, y, wx, wy)
