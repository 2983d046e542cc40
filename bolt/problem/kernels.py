"""Closed forms for ``σ = erf`` with standard Gaussian inputs (MATH.md §1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["arcsine_kernel", "arcsine_kernel_grad", "arcsine_kernel_diag", "linear_ftilde", "linear_ftilde_grad"]

Array = jax.Array


def arcsine_kernel(w: Array, v: Array) -> Array:
    r"""K(w, v) = E[erf(⟨w,X⟩) erf(⟨v,X⟩)] for X ~ N(0, I).

    .. math:: K(w,v) = \tfrac{2}{\pi}\arcsin\frac{2\langle w,v\rangle}{\sqrt{(1+2|w|^2)(1+2|v|^2)}}

    Args:
      w: ``(n, d)`` weights.
      v: ``(m, d)`` weights.

    Returns:
      ``(n, m)`` kernel matrix.

    Example:
      >>> import jax.numpy as jnp
      >>> float(arcsine_kernel(jnp.zeros((1, 2)), jnp.ones((1, 2)))[0, 0])
      0.0
    """
    a = 1.0 + 2.0 * jnp.sum(w * w, axis=-1)
    b = 1.0 + 2.0 * jnp.sum(v * v, axis=-1)
    c = w @ v.T
    arg = 2.0 * c / jnp.sqrt(a[:, None] * b[None, :])
    return (2.0 / jnp.pi) * jnp.arcsin(jnp.clip(arg, -1.0, 1.0))


def arcsine_kernel_diag(w: Array) -> Array:
    """``K(w_i, w_i)`` for ``w`` ``(n, d)``: ``(2/π) arcsin(2|w|²/(1+2|w|²))``."""
    s = jnp.sum(w * w, axis=-1)
    return (2.0 / jnp.pi) * jnp.arcsin(2.0 * s / (1.0 + 2.0 * s))


def arcsine_kernel_grad(w: Array, v: Array, weights: Array) -> Array:
    r"""``Σ_j weights_j ∇_w K(w_i, v_j)`` for every row ``w_i``.

    .. math:: \nabla_w K(w,v) = \tfrac{4}{\pi}\,\frac{v - (2c/A) w}{\sqrt{AB - 4c^2}},
       \quad A = 1+2|w|^2,\ B = 1+2|v|^2,\ c = \langle w,v\rangle.

    Args:
      w: ``(n, d)`` query points.
      v: ``(m, d)`` kernel centres.
      weights: ``(m,)`` coefficients.

    Returns:
      ``(n, d)`` weighted gradient sum; never materialises an ``(n, m, d)`` array.
    """
    a = 1.0 + 2.0 * jnp.sum(w * w, axis=-1)
    b = 1.0 + 2.0 * jnp.sum(v * v, axis=-1)
    c = w @ v.T
    # AB − 4c² ≥ A + B − 1 > 0 by Cauchy–Schwarz, so the root never vanishes.
    g = (4.0 / jnp.pi) * weights[None, :] / jnp.sqrt(a[:, None] * b[None, :] - 4.0 * c * c)
    return g @ v - (2.0 * jnp.sum(g * c, axis=1) / a)[:, None] * w


def linear_ftilde(w: Array, a_vec: Array) -> Array:
    r"""f̃(w) = −E[⟨a,X⟩ erf(⟨w,X⟩)] = −(2/√π) ⟨a, w⟩ / sqrt(1 + 2|w|²); ``w`` is ``(n, d)``."""
    s = jnp.sqrt(1.0 + 2.0 * jnp.sum(w * w, axis=-1))
    return -(2.0 / jnp.sqrt(jnp.pi)) * (w @ a_vec) / s


def linear_ftilde_grad(w: Array, a_vec: Array) -> Array:
    """``∇ f̃`` of :func:`linear_ftilde` for every row of ``w`` ``(n, d)``."""
    s2 = 1.0 + 2.0 * jnp.sum(w * w, axis=-1)
    s = jnp.sqrt(s2)
    aw = w @ a_vec
    return -(2.0 / jnp.sqrt(jnp.pi)) * (a_vec[None, :] / s[:, None] - (2.0 * aw / (s2 * s))[:, None] * w)
