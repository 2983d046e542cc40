"""Kernel Stein discrepancy with the inverse multiquadric kernel (Gorham & Mackey, 2017), and a
goodness-of-fit test of it against its null distribution by wild bootstrap (Chwialkowski,
Strathmann & Gretton, 2016; Liu, Lee & Jordan, 2016).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bolt._chunk import block_size, sum_over_rows

__all__ = ["ksd", "ksd_squared", "ksd_test", "KSDTest", "stein_kernel_block"]


def stein_kernel_block(Xb, Sb, X, S, *, c: float = 1.0, power: float = -0.5):
    r"""Stein kernel ``k_p(x_i, x_j)`` for a block of rows against all samples: ``(b, n)``.

    .. math:: k_p(x,y) = s(x)^\top s(y) k + s(x)^\top\nabla_y k + s(y)^\top\nabla_x k
       + \nabla_x\cdot\nabla_y k,\quad k(x,y) = (c^2 + |x-y|^2)^{\beta_k}
    """
    d = X.shape[1]
    c2, b = c * c, power
    diff = Xb[:, None, :] - X[None, :, :]
    r2 = jnp.sum(diff * diff, -1)
    base = c2 + r2
    k = base**b
    dk = 2 * b * base ** (b - 1)  # ∇_x k = dk · (x − y); ∇_y k = −dk · (x − y)
    term1 = (Sb @ S.T) * k
    term2 = -jnp.sum(Sb[:, None, :] * diff, -1) * dk
    term3 = jnp.sum(S[None, :, :] * diff, -1) * dk
    trace = -2 * b * (d * base ** (b - 1) + 2 * (b - 1) * r2 * base ** (b - 2))
    return term1 + term2 + term3 + trace


def _stein_diag(S, d: int, c: float, power: float):
    c2 = c * c
    return jnp.sum(S * S, -1) * c2**power - 2 * power * d * c2 ** (power - 1)


def _quadratic_forms(X, S, E, c, power):
    """``(Σ_ij E_ib E_jb k_p(x_i, x_j))_b`` and the diagonal ``Σ_i E_ib² k_p(x_i, x_i)``, chunked."""
    n, d = X.shape
    XS = jnp.concatenate([X, S], 1)

    def block(rows, w):  # rows carry (x, s, e); w masks padding
        Xb, Sb, Eb = rows[:, :d], rows[:, d:2 * d], rows[:, 2 * d:]
        kp = stein_kernel_block(Xb, Sb, X, S, c=c, power=power)
        return jnp.sum((w[:, None] * Eb) * (kp @ E), 0)

    rows = jnp.concatenate([XS, E], 1)
    total = sum_over_rows(block, rows, jnp.ones(n, X.dtype), block_size(n * (d + E.shape[1]), 1 << 24))
    diag = (E * E).T @ _stein_diag(S, d, c, power)
    return total, diag


def ksd_squared(samples, scores, *, c: float = 1.0, power: float = -0.5):
    r"""The U-statistic ``KSD² = (1/(n(n−1))) Σ_{i≠j} k_p(x_i, x_j)`` (signed: it can be < 0).

    Args:
      samples: ``(n, d)``.
      scores: ``(n, d)`` the target's score ``∇ log p`` at the samples (no normalising constant needed).
    """
    X, S = jnp.asarray(samples), jnp.asarray(scores)
    n = X.shape[0]
    total, diag = _quadratic_forms(X, S, jnp.ones((n, 1), X.dtype), c, power)
    return (total[0] - diag[0]) / (n * (n - 1))


def ksd(samples, scores, *, c: float = 1.0, power: float = -0.5, unbiased: bool = True):
    r"""KSD of ``samples`` ``(n, d)`` against the law whose score at the samples is ``scores`` ``(n, d)``.

    .. math:: \mathrm{KSD}^2 = \frac{1}{n(n-1)}\sum_{i\ne j} k_p(x_i, x_j),\quad
       k(x,y) = (c^2 + |x-y|^2)^{\beta_k}

    with the Stein kernel of :func:`stein_kernel_block`. Needs no normalising constant. Returns
    ``sqrt(max(KSD², 0))`` (the V-statistic ``Σ_{i,j}/n²`` with ``unbiased=False``); the signed
    statistic is :func:`ksd_squared`. Memory is chunked.
    """
    X, S = jnp.asarray(samples), jnp.asarray(scores)
    n = X.shape[0]
    total, diag = _quadratic_forms(X, S, jnp.ones((n, 1), X.dtype), c, power)
    val = (total[0] - diag[0]) / (n * (n - 1)) if unbiased else total[0] / (n * n)
    return jnp.sqrt(jnp.maximum(val, 0.0))


class KSDTest(NamedTuple):
    """A KSD goodness-of-fit test: the signed U-statistic, its null 95 % quantile and the p-value."""

    statistic: jax.Array
    floor: jax.Array
    p_value: jax.Array


def ksd_test(key, samples, scores, *, chains: int = 1, correlation=None, n_boot: int = 500,
             c: float = 1.0, power: float = -0.5) -> KSDTest:
    r"""Test ``samples ~ p`` with the KSD U-statistic and a wild bootstrap of its null distribution.

    Under the null the U-statistic is degenerate; its law is reproduced by
    ``B = (1/(n(n−1))) Σ_{i≠j} e_i e_j k_p(x_i, x_j)`` with multipliers ``e`` of mean 0 and
    variance 1. For independent samples (``correlation=None``) ``e`` is Rademacher; for MCMC draws
    laid out as ``chains`` consecutive blocks, ``e`` is a Gaussian AR(1) process within each chain
    with lag-one correlation ``correlation`` (a traced scalar in [0, 1); the Markov-chain wild
    bootstrap), so the null's width
    includes the draws' autocorrelation. The test is scale-free: the statistic and its null scale
    together with the score.

    Returns:
      :class:`KSDTest` with the statistic, the null's 95 % quantile (the *noise floor*) and the
      p-value ``(1 + #{B ≥ T}) / (n_boot + 1)``.
    """
    X, S = jnp.asarray(samples), jnp.asarray(scores)
    n = X.shape[0]
    if correlation is None:
        E = jax.random.rademacher(key, (n, n_boot), X.dtype)
    else:
        per = n // chains
        eps = jax.random.normal(key, (chains, per, n_boot), X.dtype)
        rho = jnp.asarray(correlation, X.dtype)

        def ar(prev, e):
            nxt = rho * prev + jnp.sqrt(1 - rho**2) * e
            return nxt, nxt

        _, E = jax.lax.scan(ar, eps[:, 0], jnp.swapaxes(eps[:, 1:], 0, 1))
        E = jnp.concatenate([eps[:, :1], jnp.swapaxes(E, 0, 1)], 1).reshape(n, n_boot)
    ones = jnp.ones((n, 1), X.dtype)
    total, diag = _quadratic_forms(X, S, jnp.concatenate([ones, E], 1), c, power)
    stats = (total - diag) / (n * (n - 1))
    t, boot = stats[0], stats[1:]
    p = (1.0 + jnp.sum(boot >= t)) / (n_boot + 1.0)
    return KSDTest(t, jnp.quantile(boot, 0.95), p)
