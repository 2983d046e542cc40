r"""The Schrödinger bridge between two weighted particle sets (MATH.md §4), by entropic Sinkhorn.

The static problem is entropic OT with cost ``c(x, y) = |x − y|²/2`` and regulariser ``ε·KL(π ‖ a⊗b)``;
``ε = τ`` gives the bridge whose reference is √τ·Brownian motion. The optimal plan is

.. math:: P_{ij} = a_i b_j \exp\big((f_i + g_j - |x_i - y_j|^2/2)/\varepsilon\big),

with Sinkhorn potentials ``f, g`` (in these units), and its value is ``Σ a_i f_i + Σ b_j g_j``.
The path law is the plan's mixture of Brownian bridges
``X_t = (1 − t) x + t y + √τ (B_t − t B_1)`` (:func:`~bolt.dynamics.path.brownian_bridge_paths`).

The engine is OTT-JAX's log-domain Sinkhorn (jittable, runs on GPU); its cost is ``|x − y|²``, so it
is called with ``2ε`` and its potentials are halved. Above ``MAX_BLOCK_ELEMENTS`` plan entries (or
with ``batch_size``) the cost matrix is never stored: bolt's own log-domain Sinkhorn
(:func:`sinkhorn_online`, one jitted ``lax.while_loop`` whose log-sum-exps run over row blocks)
is used instead, because OTT's online geometry fails on the installed JAX (``jax.interpreters.
batching.is_vmappable`` was removed); the tests check the two agree. Every method below works in
row blocks too. POT's ``sinkhorn_log`` (cost matrix ``|x − y|²``, ``reg = 2ε``) is the host-side
reference in the tests.

As ``ε → 0`` the conditional mean ``E[Y | X = x]`` (the entropic map) tends to the optimal map of
:mod:`bolt.transport`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bolt._chunk import MAX_BLOCK_ELEMENTS, block_size, map_rows
from bolt.errors import BoltError

__all__ = ["SchrodingerBridge", "schrodinger_bridge", "sinkhorn_online"]

Array = jax.Array


class SchrodingerBridge(NamedTuple):
    """A solved entropic OT problem (cost ``|x − y|²/2``, regulariser ``epsilon``) and its bridge.

    Attributes:
      x, y: ``(n, d)``, ``(m, d)`` support points; a, b: their weights.
      f, g: Sinkhorn potentials, ``P_ij = a_i b_j exp((f_i + g_j − |x_i − y_j|²/2)/ε)``.
      epsilon: ε (absolute units).
      cost: entropic OT value ``⟨P, c⟩ + ε KL(P ‖ a⊗b) = Σ a f + Σ b g``.
      converged: whether the marginal error reached the tolerance within the iteration cap.
      iterations: Sinkhorn iterations run.
      error: the last marginal error (L1) reported by the solver.
    """

    x: Array
    y: Array
    a: Array
    b: Array
    f: Array
    g: Array
    epsilon: float
    cost: float
    converged: bool
    iterations: int
    error: float

    def _logits(self, X):
        """``log P(Y = y_j | X = x)`` up to a row constant, for rows of ``X`` (any points)."""
        c = 0.5 * (jnp.sum(X * X, 1)[:, None] - 2.0 * X @ self.y.T + jnp.sum(self.y * self.y, 1)[None, :])
        return jnp.log(self.b)[None, :] + (self.g[None, :] - c) / self.epsilon

    def conditional_mean(self, points) -> Array:
        """Entropic map ``T_ε(x) = E_P[Y | X = x] = Σ_j softmax_j(log b_j + (g_j − |x − y_j|²/2)/ε) y_j``.

        Extends to points outside ``x``; ``(k, d) → (k, d)``, chunked over rows.
        """
        X = jnp.asarray(points, self.y.dtype)
        return map_rows(lambda B: jax.nn.softmax(self._logits(B), 1) @ self.y, X,
                        block_size(self.y.shape[0], MAX_BLOCK_ELEMENTS))

    def plan(self) -> np.ndarray:
        """The dense ``(n, m)`` plan (small problems only)."""
        if self.x.shape[0] * self.y.shape[0] > MAX_BLOCK_ELEMENTS:
            raise BoltError("plan: too large to store; use conditional_mean / sample_pairs")
        return np.asarray(self.a[:, None] * jax.nn.softmax(self._logits(self.x), 1))

    def marginal_error(self) -> float:
        """L1 distance of the plan's second marginal (rows conditioned exactly) to ``b``."""
        chunk = block_size(self.y.shape[0], MAX_BLOCK_ELEMENTS)
        col = sum(self.a[s:s + chunk] @ jax.nn.softmax(self._logits(self.x[s:s + chunk]), 1)
                  for s in range(0, self.x.shape[0], chunk))
        return float(jnp.sum(jnp.abs(col - self.b)))

    def cross_covariance(self) -> np.ndarray:
        """``Cov_P(X, Y) = Σ_i a_i (x_i − x̄)(E[Y|x_i] − ȳ)ᵀ`` (rows conditioned exactly)."""
        ey = self.conditional_mean(self.x)
        xb, yb = self.a @ self.x, self.b @ self.y
        return np.asarray(((self.x - xb[None, :]) * self.a[:, None]).T @ (ey - yb[None, :]))

    def sample_pairs(self, key, n: int) -> tuple[Array, Array]:
        """``n`` pairs ``(x_i, y_j) ~ P``: ``i ~ a``, then ``j ~ P(· | i)`` (no dense plan)."""
        k1, k2 = jax.random.split(key)
        i = jax.random.choice(k1, self.x.shape[0], (int(n),), p=self.a)
        X = self.x[i]
        j = _sample_rows(jax.random.split(k2, int(n)), X, self)
        return X, self.y[j]

    def paths(self, key, times, n: int, tau: float | None = None) -> Array:
        """``(n, S, d)`` paths of the bridge: plan pairs joined by √τ-Brownian bridges (τ = ε by default)."""
        from bolt.dynamics.path import brownian_bridge_paths

        k1, k2 = jax.random.split(key)
        X, Y = self.sample_pairs(k1, n)
        return brownian_bridge_paths(k2, X, Y, times, self.epsilon if tau is None else tau)


def _sample_rows(keys, X, sb: SchrodingerBridge):
    chunk = block_size(sb.y.shape[0], MAX_BLOCK_ELEMENTS)
    out = []
    for s in range(0, X.shape[0], chunk):
        lg = sb._logits(X[s:s + chunk])
        out.append(jax.vmap(jax.random.categorical)(keys[s:s + chunk], lg))
    return jnp.concatenate(out)


class _OTTOut(NamedTuple):
    f: Array
    g: Array
    converged: Array
    n_iters: Array
    errors: Array


@partial(jax.jit, static_argnums=(6,))
def _ott_solve(X, Y, A, B, eps_ott, tol, max_iterations):
    """OTT's Sinkhorn, compiled once per shape (ε and the tolerance are traced)."""
    from ott.geometry import pointcloud
    from ott.solvers import linear

    with jax.numpy_rank_promotion("allow"):  # OTT relies on implicit rank promotion internally
        geom = pointcloud.PointCloud(X, Y, epsilon=eps_ott)
        out = linear.solve(geom, A, B, threshold=tol, max_iterations=max_iterations, inner_iterations=10)
    return out.f, out.g, out.converged, out.n_iters, out.errors


def _lse_rows(X, Y, logw, pot, eps, chunk):
    """``−ε log Σ_j exp(logw_j + (pot_j − |x − y_j|²/2)/ε)`` for each row x of ``X`` (row blocks)."""
    lw = logw + pot / eps
    y2 = 0.5 * jnp.sum(Y * Y, 1)

    def block(B):
        c = 0.5 * jnp.sum(B * B, 1)[:, None] - B @ Y.T + y2[None, :]
        return -eps * jax.scipy.special.logsumexp(lw[None, :] - c / eps, axis=1)

    return map_rows(block, X, chunk)


def sinkhorn_online(x, y, a, b, epsilon, *, tolerance: float = 1e-6, max_iterations: int = 10_000,
                    chunk: int = 1024):
    r"""Log-domain Sinkhorn for cost ``|x − y|²/2`` without storing the cost matrix.

    .. math:: f_i \leftarrow -\varepsilon\log\sum_j b_j e^{(g_j - c_{ij})/\varepsilon},\quad
              g_j \leftarrow -\varepsilon\log\sum_i a_i e^{(f_i - c_{ij})/\varepsilon}

    One jitted ``lax.while_loop`` (``epsilon`` and ``tolerance`` traced); the stopping error is the L1
    deviation of the plan's second marginal before each ``g`` update, ``Σ_j b_j |e^{(g_j − g'_j)/ε} − 1|``.

    Returns:
      ``(f, g, iterations, error)`` with ``P_ij = a_i b_j exp((f_i + g_j − c_ij)/ε)``.
    """
    X, Y, A, B = (jnp.asarray(v) for v in (x, y, a, b))
    la, lb = jnp.log(A), jnp.log(B)
    cx = cy = max(1, int(chunk))

    @jax.jit
    def run(eps, tol):
        def cond(c):
            k, _, _, err = c
            return (k < max_iterations) & (err > tol)

        def body(c):
            k, f, g, _ = c
            f = _lse_rows(X, Y, lb, g, eps, cx)
            g_new = _lse_rows(Y, X, la, f, eps, cy)
            err = jnp.sum(B * jnp.abs(jnp.expm1((g - g_new) / eps)))
            return k + 1, f, g_new, err

        z = jnp.zeros((), X.dtype)
        return jax.lax.while_loop(cond, body, (0, jnp.zeros_like(A), jnp.zeros_like(B), z + jnp.inf))

    k, f, g, err = run(jnp.asarray(epsilon, X.dtype), jnp.asarray(tolerance, X.dtype))
    return f, g, int(k), float(err)


def schrodinger_bridge(x, y, epsilon: float, a=None, b=None, *, tolerance: float = 1e-6,
                       max_iterations: int = 10_000, batch_size: int | None = None) -> SchrodingerBridge:
    """Solve entropic OT between weighted particle sets (cost ``|x − y|²/2``, regulariser ``epsilon``).

    Args:
      x: ``(n, d)`` source points; a: ``(n,)`` weights (uniform when omitted).
      y: ``(m, d)`` target points; b: ``(m,)`` weights.
      epsilon: ε > 0 in absolute units (``ε = τ``: the Schrödinger bridge with √τ·Brownian reference).
      tolerance: stop when the L1 marginal error is below it.
      max_iterations: Sinkhorn iteration cap.
      batch_size: rows per block of the online solver (default: online above 2²² plan entries).

    Returns:
      :class:`SchrodingerBridge`. Not converging is not an error here (see ``converged``).

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> sb = schrodinger_bridge(rng.normal(size=(50, 2)), rng.normal(size=(60, 2)) + 1.0, 0.5)
      >>> bool(sb.converged), sb.conditional_mean(np.zeros((1, 2))).shape
      (True, (1, 2))
    """
    from bolt.transport.w2 import check_samples

    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        eps = float("nan")
    if not (np.isfinite(eps) and eps > 0):
        raise BoltError(f"epsilon: must be a positive finite number, got {epsilon!r}")
    x, a = check_samples(x, "x", a)
    y, b = check_samples(y, "y", b)
    if x.shape[1] != y.shape[1]:
        raise BoltError(f"samples: dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    n, m = len(x), len(y)
    if batch_size is None and n * m > MAX_BLOCK_ELEMENTS:
        batch_size = max(1, MAX_BLOCK_ELEMENTS // max(n, m))
    X, Y, A, B = (jnp.asarray(v) for v in (x, y, a, b))
    if batch_size is not None:
        f, g, iters, err = sinkhorn_online(X, Y, A, B, eps, tolerance=tolerance, max_iterations=max_iterations,
                                           chunk=int(batch_size))
        return SchrodingerBridge(X, Y, A, B, f, g, eps, float(A @ f + B @ g), bool(err <= tolerance), iters, err)
    f_ott, g_ott, converged, n_iters, errors = _ott_solve(X, Y, A, B, jnp.asarray(2.0 * eps, X.dtype),
                                                          jnp.asarray(tolerance, X.dtype), int(max_iterations))
    out = _OTTOut(f_ott, g_ott, converged, n_iters, errors)
    # OTT: P = exp((f' + g' − |x − y|²)/(2ε)); ours: P = a b exp((f + g − |x − y|²/2)/ε)
    f = jnp.where(A > 0, out.f / 2.0 - eps * jnp.log(jnp.where(A > 0, A, 1.0)), 0.0)
    g = jnp.where(B > 0, out.g / 2.0 - eps * jnp.log(jnp.where(B > 0, B, 1.0)), 0.0)
    errs = np.asarray(out.errors)
    errs = errs[errs >= 0]
    return SchrodingerBridge(X, Y, A, B, f, g, eps, float(A @ f + B @ g), bool(out.converged),
                             int(out.n_iters), float(errs[-1]) if errs.size else float("nan"))
