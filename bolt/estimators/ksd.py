"""Kernel Stein discrepancy with the inverse multiquadric kernel (Gorham & Mackey, 2017), and a
goodness-of-fit test of it against its null distribution by wild bootstrap (Chwialkowski,
Strathmann & Gretton, 2016; Liu, Lee & Jordan, 2016).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bolt._chunk import block_size, sum_over_rows

__all__ = ["ksd", "ksd_squared", "ksd_test", "KSDTest", "stein_kernel_block", "block_multipliers"]


def stein_kernel_block(Xb, Sb, X, S, *, c: float = 1.0, power: float = -0.5):
    r"""Stein kernel ``k_p(x_i, x_j)`` for a block of rows against all samples: ``(b, n)``.

    .. math:: k_p(x,y) = s(x)^\top s(y) k + s(x)^\top\nabla_y k + s(y)^\top\nabla_x k
       + \nabla_x\cdot\nabla_y k,\quad k(x,y) = (c^2 + |x-y|^2)^{\beta_k}
    """
    return _stein_parts(Xb, Sb, X, S, c, power)[0]


def _stein_parts(Xb, Sb, X, S, c, power):
    """``k_p``, the base kernel ``k`` and ``h(x_i, x_j) = s(x_j) k + ∇_{x_j} k`` (``(b, n, d)``): ``k_p``
    moves by ``δ(x)ᵀh(x, y) + δ(y)ᵀh(y, x) + δ(x)ᵀδ(y) k`` when the score moves by ``δ``."""
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
    h = S[None, :, :] * k[:, :, None] - dk[:, :, None] * diff
    return term1 + term2 + term3 + trace, k, h


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


def block_multipliers(key, n: int, n_boot: int, *, chains: int = 1, blocks: int | None = None,
                      gaussian: bool = False, dtype=jnp.float64):
    """Bootstrap multipliers ``(n, n_boot)`` of mean 0 and variance 1, constant within blocks.

    The ``n`` samples are ``chains`` chains of equal length laid out one after another; each chain
    is cut into ``blocks / chains`` blocks of consecutive draws (``blocks=None``: every sample is its
    own block), and each block draws one Rademacher (or standard Gaussian) multiplier per column.
    Blocks much longer than the draws' autocorrelation time make the bootstrap valid for MCMC draws
    (a block wild bootstrap); whole independent chains as blocks make it exact whatever the
    autocorrelation.
    """
    per = n // chains
    bpc = per if blocks is None else min(per, max(1, int(blocks) // chains))
    block_of = (jnp.arange(chains)[:, None] * bpc + jnp.arange(per)[None, :] * bpc // per).reshape(-1)
    shape = (chains * bpc, n_boot)
    vals = jax.random.normal(key, shape, dtype) if gaussian else jax.random.rademacher(key, shape, dtype)
    return vals[block_of]


def ksd_test(key, samples, scores, *, chains: int = 1, blocks: int | None = None, n_boot: int = 500,
             score_noise=None, c: float = 1.0, power: float = -0.5) -> KSDTest:
    r"""Test ``samples ~ p`` with the KSD U-statistic and a wild bootstrap of its null distribution.

    Under the null the U-statistic is degenerate; its law is reproduced by
    ``B = (1/(n(n−1))) Σ_{i≠j} e_i e_j k_p(x_i, x_j)`` with Rademacher multipliers ``e``
    (:func:`block_multipliers`). For independent samples every sample has its own multiplier. For
    MCMC draws laid out as ``chains`` consecutive chains, pass ``blocks``: the multipliers are then
    constant within blocks of consecutive draws of one chain, and the pairs inside a block enter
    ``B`` exactly as they enter the statistic (``e² = 1``), so their bias from the draws'
    autocorrelation cancels in the comparison; blocks must be much longer than the autocorrelation
    time (whole chains are exact) and numerous enough (tens) for the null's shape. The test is
    scale-free: the statistic and its null scale together with the score.

    ``score_noise`` ``(n, d, n_boot)``, when given, are bootstrap replicates ``δ_b`` of the error of
    ``scores`` itself (a score estimated from other random draws, e.g. the Gibbs measure of an
    empirical field, :func:`bolt.gibbs.stopping.fixed_point_test`). The statistic then carries that
    error's contribution ``(1/(n(n−1))) Σ_{i≠j} [2 δ(x_i)ᵀ h(x_i, x_j) + δ(x_i)ᵀ δ(x_j) k(x_i, x_j)]``
    (``h(x, y) = s(y) k + ∇_y k``), whose mean is positive: a test that leaves it out rejects a true
    null far more often than its level. Each bootstrap replicate adds the same terms with ``δ_b``
    and the multipliers ``e`` on ``h``'s second argument.

    Returns:
      :class:`KSDTest` with the statistic, the null's 95 % quantile (the *noise floor*) and the
      p-value ``(1 + #{B ≥ T}) / (n_boot + 1)``.
    """
    X, S = jnp.asarray(samples), jnp.asarray(scores)
    n = X.shape[0]
    E = block_multipliers(key, n, n_boot, chains=chains, blocks=blocks, dtype=X.dtype)
    ones = jnp.ones((n, 1), X.dtype)
    total, diag = _quadratic_forms(X, S, jnp.concatenate([ones, E], 1), c, power)
    stats = (total - diag) / (n * (n - 1))
    t, boot = stats[0], stats[1:]
    if score_noise is not None:
        boot = boot + _score_noise_terms(X, S, E, jnp.asarray(score_noise, X.dtype), c, power) / (n * (n - 1))
    p = (1.0 + jnp.sum(boot >= t)) / (n_boot + 1.0)
    return KSDTest(t, jnp.quantile(boot, 0.95), p)


def _score_noise_terms(X, S, E, D, c, power):
    """``Σ_{i≠j} [2 D_iᵀ h_ij e_j + D_iᵀ D_j k_ij]`` for every bootstrap column (``D`` is ``(n, d, B)``), chunked."""
    n, d = X.shape
    nb = E.shape[1]
    rows = jnp.concatenate([X, S, E, D.reshape(n, d * nb)], 1)
    cdiag = (c * c) ** power  # k(x, x)

    def block(r, w):
        Xb, Sb, Eb, Db = r[:, :d], r[:, d:2 * d], r[:, 2 * d:2 * d + nb], r[:, 2 * d + nb:].reshape(-1, d, nb)
        _, k, h = _stein_parts(Xb, Sb, X, S, c, power)
        he = jnp.einsum("ijd,jb->idb", h, E) - Sb[:, :, None] * cdiag * Eb[:, None, :]  # Σ_{j≠i} h_ij e_j
        kd = jnp.einsum("ij,jdb->idb", k, D) - cdiag * Db  # Σ_{j≠i} k_ij D_j
        return jnp.sum(w[:, None, None] * Db * (2.0 * he + kd), (0, 1))

    return sum_over_rows(block, rows, jnp.ones(n, X.dtype), block_size(d * (n + nb), 1 << 22))
