r"""The path measure directly: mixtures of Brownian bridges (MATH.md §4).

Given ``W_1 = y`` the optimal path from 0 is a √τ-Brownian bridge, so the path law of the
Föllmer process is the mixture over ``y ~ µ*`` of bridges; between two marginals (the
Schrödinger bridge) it is the mixture over the plan's pairs ``(x, y)`` of

.. math:: X_t = (1 - t) x + t y + \sqrt{\tau}\,(B_t - t B_1),

whose time-t marginal is ``N((1 − t)x + t y, τ t (1 − t) I)``. Paths are correlated across
time (one Brownian path per draw), so any functional of the path law is a cheap average.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bolt.dynamics.follmer import check_time
from bolt.errors import BoltError

__all__ = ["brownian_bridge_paths", "bridge_paths_from_zero", "bridge_marginal_moments", "bridge_marginal_density"]


def _check_times(times) -> np.ndarray:
    times = np.asarray(times, np.float64).reshape(-1)
    check_time(times, "times")
    if times.size == 0:
        raise BoltError("times: at least one time is needed")
    return times


def brownian_bridge_paths(key, x0, x1, times, tau):
    r"""Paths ``X_t = (1 − t) x0 + t x1 + √τ (B_t − t B_1)`` at ``times``, one Brownian path per row.

    Args:
      key: PRNG key.
      x0, x1: ``(n, d)`` start and end points.
      times: ``(S,)`` times in ``[0, 1]`` (any order).
      tau: reference variance τ.

    Returns:
      ``(n, S, d)`` paths.
    """
    times = _check_times(times)
    x0, x1 = jnp.asarray(x0), jnp.asarray(x1)
    if x0.shape != x1.shape or x0.ndim != 2:
        raise BoltError(f"bridge: start and end points must both be (n, d), got {x0.shape} and {x1.shape}")
    order = np.argsort(times)
    ts = np.concatenate([times[order], [1.0]])
    dts = np.diff(np.concatenate([[0.0], ts]))
    n, d = x0.shape
    inc = jax.random.normal(key, (n, len(ts), d), x0.dtype) * jnp.sqrt(jnp.asarray(dts, x0.dtype))[None, :, None]
    B = jnp.cumsum(inc, axis=1)
    t_arr = jnp.asarray(ts[:-1], x0.dtype)[None, :, None]
    bridge = B[:, :-1, :] - t_arr * B[:, -1:, :]
    X = (1.0 - t_arr) * x0[:, None, :] + t_arr * x1[:, None, :] + jnp.sqrt(tau) * bridge
    inv = np.argsort(order)
    return X[:, inv, :]


def bridge_paths_from_zero(key, particles, weights, times, tau, n: int):
    """Paths of the mixture of bridges from 0 to ``y ~ Σ a_j δ_{y_j}`` (µ*'s Föllmer path law).

    Returns:
      ``(paths (n, S, d), endpoints (n, d))``; ``paths[:, s]`` are draws of
      ``µ*_t = Law(t W_1 + sqrt(τ t (1 − t)) ξ)`` at ``t = times[s]``.
    """
    P = jnp.asarray(particles)
    a = None if weights is None else jnp.asarray(weights, P.dtype)
    if a is not None and a.shape != (P.shape[0],):
        raise BoltError(f"weights: expected shape ({P.shape[0]},), got {tuple(a.shape)}")
    k1, k2 = jax.random.split(key)
    idx = jax.random.choice(k1, P.shape[0], (n,), p=a)
    y = P[idx]
    return brownian_bridge_paths(k2, jnp.zeros_like(y), y, times, tau), y


def bridge_marginal_moments(mean, cov, t: float, tau: float):
    """Mean and covariance of ``t W_1 + sqrt(τ t(1 − t)) ξ`` for ``W_1`` with the given moments."""
    m, C = np.asarray(mean, np.float64), np.atleast_2d(np.asarray(cov, np.float64))
    return t * m, t * t * C + tau * t * (1.0 - t) * np.eye(len(m))


def bridge_marginal_density(x, t: float, particles, weights, tau: float) -> np.ndarray:
    """Density of ``µ*_t`` in d = 1: ``Σ_j a_j N(x; t y_j, τ t (1 − t))`` (``0 < t ≤ 1`` with t < 1 for
    a discrete µ*), for a ``(k,)`` array of points ``x``."""
    check_time(t)
    y = np.asarray(particles, np.float64).reshape(-1)
    a = np.full(len(y), 1.0 / len(y)) if weights is None else np.asarray(weights, np.float64)
    v = tau * t * (1.0 - t)
    if v <= 0:
        raise BoltError("bridge_marginal_density: needs 0 < t < 1")
    x = np.asarray(x, np.float64).reshape(-1)
    z = (x[:, None] - t * y[None, :]) ** 2 / (2 * v)
    return (np.exp(-z) @ a) / np.sqrt(2 * np.pi * v)
