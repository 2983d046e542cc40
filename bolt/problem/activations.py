"""Units σ(x; w) of the two-layer network.

An :class:`Activation` evaluates the matrix ``σ(X, W)[j, i] = σ(X_j; W_i)`` for inputs ``X``
``(n, p)`` and weights ``W`` ``(m, d)``; gradients in ``w`` come from autodiff. Built-ins:

- ``erf``: ``σ(x; w) = erf(⟨w, x⟩)``, ``p = d`` (closed-form arcsine kernel for Gaussian inputs);
- ``tanh``: ``σ(x; w) = tanh(⟨w, x⟩)``, ``p = d``;
- ``erf_bias``: ``w = (b, w')``, ``σ(x; w) = erf(b + ⟨w', x⟩)``, ``p = d − 1``.

Any callable ``σ(x, w)`` on single vectors ``x`` ``(p,)`` and ``w`` ``(d,)`` is accepted through
:func:`custom_activation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from bolt.errors import BoltError

__all__ = ["Activation", "get_activation", "custom_activation", "ACTIVATIONS"]

Array = jax.Array


@dataclass(frozen=True)
class Activation:
    """A unit σ(x; w).

    Attributes:
      name: identifier (``"erf"``, ``"tanh"``, ``"erf_bias"`` or a custom name).
      matrix: ``(X (n, p), W (m, d)) -> (n, m)`` array of σ(X_j; W_i).
      input_dim: maps the weight dimension ``d`` to the input dimension ``p``.
      odd: ``σ(x; −w) = −σ(x; w)``; then ``f̂(·; γ_τ) ≡ 0`` exactly.
      lipschitz_sq_gaussian: closed form of ``L_σ² = sup_w E|∇_w σ(X; w)|²`` for ``X ~ N(0, I_p)``
        as a function of ``p`` (``None`` when it must be estimated).
    """

    name: str
    matrix: Callable[[Array, Array], Array]
    input_dim: Callable[[int], int]
    odd: bool = False
    lipschitz_sq_gaussian: Callable[[int], float] | None = None

    def __call__(self, x: Array, w: Array) -> Array:
        """σ(x; w) for single vectors ``x`` ``(p,)`` and ``w`` ``(d,)``."""
        return self.matrix(x[None, :], w[None, :])[0, 0]

    def grad_w(self, X: Array, w: Array) -> Array:
        """``∇_w σ(X_j; w)`` for every row of ``X`` ``(n, p)``: an ``(n, d)`` array."""
        return jax.jacfwd(lambda v: self.matrix(X, v[None, :])[:, 0])(w)


def _erf_matrix(X: Array, W: Array) -> Array:
    return erf(X @ W.T)


def _tanh_matrix(X: Array, W: Array) -> Array:
    return jnp.tanh(X @ W.T)


def _erf_bias_matrix(X: Array, W: Array) -> Array:
    return erf(W[:, 0][None, :] + X @ W[:, 1:].T)


ACTIVATIONS: dict[str, Activation] = {
    "erf": Activation("erf", _erf_matrix, lambda d: d, odd=True, lipschitz_sq_gaussian=lambda p: 4.0 * p / jnp.pi),
    "tanh": Activation("tanh", _tanh_matrix, lambda d: d, odd=True, lipschitz_sq_gaussian=lambda p: float(p)),
    "erf_bias": Activation(
        "erf_bias", _erf_bias_matrix, lambda d: d - 1, odd=True,
        lipschitz_sq_gaussian=lambda p: 4.0 * (p + 1) / jnp.pi,
    ),
}


def get_activation(name: str) -> Activation:
    """Look up a built-in activation by name (``erf``, ``tanh``, ``erf_bias``)."""
    if isinstance(name, Activation):
        return name
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise BoltError(
            f"problem.activation: unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None


def custom_activation(fn: Callable[[Array, Array], Array], name: str = "custom", *,
                      input_dim: Callable[[int], int] | None = None, odd: bool = False) -> Activation:
    """Wrap a user callable ``σ(x, w)`` (single vectors, scalar output) as an :class:`Activation`.

    Args:
      fn: ``σ(x (p,), w (d,)) -> ()``; must be JAX-traceable. Gradients come from autodiff.
      name: a label used in summaries.
      input_dim: maps ``d`` to ``p`` (default ``p = d``).
      odd: declare ``σ(x; −w) = −σ(x; w)`` (then ``R(γ_τ) = R0`` is used exactly).

    Example:
      >>> import jax.numpy as jnp
      >>> relu = custom_activation(lambda x, w: jnp.maximum(x @ w, 0.0), "relu")
      >>> relu.matrix(jnp.ones((2, 3)), jnp.ones((4, 3))).shape
      (2, 4)
    """
    if not callable(fn):
        raise BoltError("problem.activation: a custom activation must be callable σ(x, w)")
    mat = jax.vmap(jax.vmap(fn, in_axes=(None, 0)), in_axes=(0, None))
    return Activation(name, mat, input_dim or (lambda d: d), odd=odd)
