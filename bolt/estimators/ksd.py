"""Kernel Stein discrepancy with the inverse multiquadric kernel (Gorham & Mackey, 2017)."""

from __future__ import annotations

import jax.numpy as jnp

from bolt._chunk import block_size, sum_over_rows

__all__ = ["ksd"]


def ksd(samples, scores, *, c: float = 1.0, power: float = -0.5, unbiased: bool = True):
    r"""KSD of ``samples`` ``(n, d)`` against the law whose score at the samples is ``scores`` ``(n, d)``.

    .. math:: \mathrm{KSD}^2 = \frac{1}{n(n-1)}\sum_{i\ne j} k_p(x_i, x_j),\quad
       k(x,y) = (c^2 + |x-y|^2)^{\beta_k}

    with the Stein kernel ``k_p = s_iᵀs_j k + s_iᵀ∇_y k + s_jᵀ∇_x k + ∇_x·∇_y k``. Needs no
    normalising constant. Returns the square root of ``max(KSD², 0)``; memory is chunked.
    """
    X = jnp.asarray(samples)
    S = jnp.asarray(scores)
    n, d = X.shape
    c2 = c * c
    b = power

    def block(Xb_S, w):
        Xb, Sb = Xb_S[:, :d], Xb_S[:, d:]
        diff = Xb[:, None, :] - X[None, :, :]
        r2 = jnp.sum(diff * diff, -1)
        base = c2 + r2
        k = base**b
        dk = 2 * b * base ** (b - 1)  # ∇_x k = dk · (x − y); ∇_y k = −dk · (x − y)
        term1 = (Sb @ S.T) * k
        term2 = -jnp.sum(Sb[:, None, :] * diff, -1) * dk
        term3 = jnp.sum(S[None, :, :] * diff, -1) * dk
        trace = -2 * b * (d * base ** (b - 1) + 2 * (b - 1) * r2 * base ** (b - 2))
        kp = term1 + term2 + term3 + trace
        return jnp.sum(w[:, None] * kp)

    XS = jnp.concatenate([X, S], 1)
    total = sum_over_rows(block, XS, jnp.ones(n, X.dtype), block_size(n * d, 1 << 24))
    # diagonal: k_p(x, x) = |s|² c^{2b} − 2 b d c^{2(b−1)}
    diag = jnp.sum(jnp.sum(S * S, -1) * c2**b - 2 * b * d * c2 ** (b - 1))
    val = (total - diag) / (n * (n - 1)) if unbiased else total / (n * n)
    return jnp.sqrt(jnp.maximum(val, 0.0))

