"""Transport maps T with T#γ_τ = µ* estimated from samples, and the lazy-training quantities.

- :func:`ot_assignment` — the exact OT matching between equal-size samples (POT, float64);
- :func:`barycentric_map` — the barycentric projection of the exact (weighted) plan;
- :func:`entropic_map` — Sinkhorn (OTT-JAX, jittable) dual potentials, extended to new points:
  ``T_ε(x) = Σ_j softmax_j((g_j − |x − y_j|²/2)/ε) y_j``;
- :func:`monotone_map_1d` — the exact 1-D map ``F_{µ*}^{-1} ∘ F_{γ_τ}``;
- :func:`lazy_training` — max/mean displacement and the L²(π) distances of the corollary (MATH.md §3).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from bolt.errors import BoltError
from bolt.transport.w2 import NUM_ITER_MAX, check_samples

__all__ = ["ot_assignment", "barycentric_map", "entropic_map", "monotone_map_1d", "lazy_training"]


def _plan(x, y, wx=None, wy=None):
    import ot

    x, wx = check_samples(x, "source", wx)
    y, wy = check_samples(y, "target", wy)
    if x.shape[1] != y.shape[1]:
        raise BoltError(f"samples: dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    M = ot.dist(x, y, metric="sqeuclidean")
    plan, log = ot.emd(wx, wy, M, numItermax=NUM_ITER_MAX, log=True)
    if log.get("result_code", 1) != 1:
        raise BoltError(f"transport: POT's exact solver did not reach an optimum: {log.get('warning')}")
    return x, y, wx, plan


def ot_assignment(x, y) -> np.ndarray:
    """Exact OT matching of equal-size uniform samples: returns ``T(x_i) = y_{σ(i)}`` as ``(n, d)``."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if len(x) != len(y):
        raise BoltError(f"ot_assignment: sample sizes differ ({len(x)} vs {len(y)}); use barycentric_map")
    _, y, _, plan = _plan(x, y)
    return y[np.argmax(plan, axis=1)]


def barycentric_map(x, y, wx=None, wy=None) -> np.ndarray:
    """Barycentric projection of the exact plan: ``T(x_i) = Σ_j P_ij y_j / Σ_j P_ij``."""
    x, y, wx, plan = _plan(x, y, wx, wy)
    return (plan @ y) / plan.sum(1, keepdims=True)


def entropic_map(x, y, epsilon: float) -> Callable:
    """Entropic OT map from samples ``x`` to ``y`` (cost ``|x − y|²/2``, regulariser ``epsilon``).

    Solved by OTT-JAX's Sinkhorn (its cost is ``|x − y|²``, so its ε is ``2·epsilon``). Returns a
    jittable function mapping ``(m, d)`` points to ``(m, d)``; it extends to points outside ``x``.
    ``epsilon = τ`` is the static Schrödinger bridge of MATH.md §4.
    """
    from ott.geometry import pointcloud
    from ott.solvers import linear

    x, _ = check_samples(x, "source")
    y, _ = check_samples(y, "target")
    if epsilon <= 0:
        raise BoltError(f"epsilon: must be > 0, got {epsilon}")
    with jax.numpy_rank_promotion("allow"):  # OTT relies on implicit rank promotion internally
        geom = pointcloud.PointCloud(jnp.asarray(x), jnp.asarray(y), epsilon=2.0 * epsilon)
        out = linear.solve(geom, max_iterations=5000, threshold=1e-6)
    if not bool(out.converged):
        raise BoltError("entropic_map: Sinkhorn did not converge; increase epsilon")
    g = out.g
    Y = jnp.asarray(y)

    @jax.jit
    def T(points):
        c = 0.5 * jnp.sum((points[:, None, :] - Y[None, :, :]) ** 2, -1)
        logits = (g[None, :] / 2.0 - c) / epsilon  # OTT's potential g is in |x − y|² units
        return jax.nn.softmax(logits, axis=1) @ Y

    return T


def monotone_map_1d(tau: float, nodes, weights) -> Callable:
    """The exact 1-D map ``T = F_µ^{-1} ∘ F_{γ_τ}`` for µ given by weighted nodes (e.g. the grid solution)."""
    z = np.asarray(nodes, np.float64).reshape(-1)
    w = np.asarray(weights, np.float64)
    order = np.argsort(z)
    z, w = z[order], w[order]
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    # piecewise-linear CDF through the cell midpoints
    mids = np.concatenate([[z[0]], 0.5 * (z[1:] + z[:-1]), [z[-1]]])
    knots = np.concatenate([[0.0], cdf])

    def T(x):
        u = np.asarray(ndtr(np.asarray(x, np.float64) / np.sqrt(tau)))
        return np.interp(u, knots, mids)

    return T


def lazy_training(problem, W, TW) -> dict:
    """The corollary's quantities for prior draws ``W`` ``(N, d)`` and their images ``T(W)``.

    Returns ``max_displacement`` and ``mean_displacement`` of ``|T(W_i) − W_i|``, ``risk_transported``
    ``= ‖f − f̂_N(·; T(W))‖²``, and ``function_change_sq = ‖f̂_N(·; T(W)) − f̂_N(·; W)‖²`` in L²(π)
    (the quadratic form of the signed measure µ̂_{T(W)} − µ̂_W).
    """
    W = np.asarray(W, np.float64)
    TW = np.asarray(TW, np.float64)
    if W.shape != TW.shape:
        raise BoltError(f"lazy_training: W {W.shape} and T(W) {TW.shape} differ in shape")
    n = len(W)
    disp = np.linalg.norm(TW - W, axis=1)
    both = jnp.asarray(np.concatenate([TW, W]))
    signed = jnp.concatenate([jnp.full(n, 1.0 / n), jnp.full(n, -1.0 / n)])
    change = float(problem.interaction(both, signed))
    return {"max_displacement": float(disp.max()), "mean_displacement": float(disp.mean()),
            "risk_transported": float(problem.risk(jnp.asarray(TW))), "function_change_sq": max(change, 0.0)}
