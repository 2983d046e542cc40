"""Closed forms of the path measure for Gaussian targets (MATH.md §4), used by bolt and its tests.

For a Gaussian target µ = N(m, s² I) (the Gibbs measure of a quadratic potential) everything in
the Föllmer / Schrödinger-bridge construction is explicit:

- the Föllmer drift ``b(w, t) = (τ m + (s² − τ) w) / (t s² + τ (1 − t))``;
- the marginal law ``W_t ~ N(t m, (t² s² + τ t (1 − t)) I)``;
- the control energy ``½ E ∫|b|² dt = τ · KL(N(m, s² I) ‖ γ_τ)``;
- the quadratic potential Ψ whose Gibbs measure (prior γ_τ, inverse temperature β) is N(m, s² I);
- entropic OT between two Gaussians (cost ``|x − y|²/2``, regulariser ``ε·KL(π ‖ α⊗β)``): the plan is
  Gaussian with cross-covariance ``C = ½ A^{1/2} D A^{-1/2} − (ε/2) I``,
  ``D = (4 A^{1/2} B A^{1/2} + ε² I)^{1/2}`` (Janati, Muzellec, Peyré & Cuturi 2020; Mallasto et al. 2021).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

__all__ = ["gaussian_follmer_drift", "gaussian_marginal", "gaussian_control_energy", "gaussian_potential",
           "gaussian_entropic_ot"]


def gaussian_follmer_drift(w, t, mean, s2: float, tau: float):
    r"""Föllmer drift of the bridge from δ_0 to N(m, s² I) with reference √τ·Brownian motion.

    .. math:: b(w, t) = \frac{\tau m + (s^2 - \tau) w}{t s^2 + \tau (1 - t)}

    Args:
      w: ``(n, d)`` positions.
      t: time in ``[0, 1]`` (scalar).
      mean: ``(d,)`` target mean m.
      s2: target variance s² (per coordinate).
      tau: reference variance τ.

    Returns:
      ``(n, d)`` drift.

    Example:
      >>> float(gaussian_follmer_drift(jnp.zeros((1, 1)), 0.0, jnp.array([0.3]), 0.2, 0.5)[0, 0])
      0.3
    """
    w = jnp.asarray(w)
    m = jnp.asarray(mean, w.dtype)
    return (tau * m[None, :] + (s2 - tau) * w) / (t * s2 + tau * (1.0 - t))


def gaussian_marginal(t, mean, s2: float, tau: float) -> tuple[np.ndarray, float]:
    """Law of ``W_t`` on the bridge from δ_0 to N(m, s² I): ``N(t m, (t² s² + τ t (1 − t)) I)``.

    Returns:
      ``(mean (d,), variance per coordinate)``.
    """
    m = np.asarray(mean, np.float64)
    return t * m, float(t * t * s2 + tau * t * (1.0 - t))


def gaussian_control_energy(mean, s2: float, tau: float) -> float:
    """``τ · KL(N(m, s² I) ‖ N(0, τ I))`` — the Föllmer process's control energy ``½E∫|b|² dt``."""
    m = np.asarray(mean, np.float64)
    d = m.shape[0]
    kl = 0.5 * (d * s2 / tau + m @ m / tau - d - d * np.log(s2 / tau))
    return float(tau * kl)


def gaussian_potential(mean, s2: float, beta: float, tau: float) -> tuple[Callable, Callable]:
    r"""A quadratic Ψ whose Gibbs measure ``∝ γ_τ exp(−(β/τ)Ψ)`` is N(m, s² I).

    .. math:: \Psi(w) = \frac{\tau}{\beta}\Big(\frac{|w - m|^2}{2 s^2} - \frac{|w|^2}{2\tau}\Big)

    Returns:
      ``(psi, grad_psi)``: callables mapping ``(n, d)`` to ``(n,)`` and ``(n, d)``.
    """
    m = jnp.asarray(mean)

    def psi(W):
        W = jnp.asarray(W)
        mm = m.astype(W.dtype)[None, :]
        return (tau / beta) * (jnp.sum((W - mm) ** 2, -1) / (2 * s2) - jnp.sum(W * W, -1) / (2 * tau))

    def grad_psi(W):
        W = jnp.asarray(W)
        return (tau / beta) * ((W - m.astype(W.dtype)[None, :]) / s2 - W / tau)

    return psi, grad_psi


def _sqrtm(S):
    ev, U = np.linalg.eigh(S)
    return (U * np.sqrt(np.clip(ev, 0.0, None))) @ U.T


def gaussian_entropic_ot(mean_a, cov_a, mean_b, cov_b, epsilon: float) -> dict:
    r"""Entropic OT between N(a, A) and N(b, B): cost ``|x − y|²/2``, regulariser ``ε·KL(π ‖ α⊗β)``.

    The optimal plan is Gaussian with cross-covariance

    .. math:: C = \tfrac12 A^{1/2} D A^{-1/2} - \tfrac{\varepsilon}{2} I,\qquad
              D = (4 A^{1/2} B A^{1/2} + \varepsilon^2 I)^{1/2},

    and the value is ``½E|X − Y|² + ε·MI = ½(|a − b|² + tr A + tr B − 2 tr C) − (ε/2) log det(I − A⁻¹ C B⁻¹ Cᵀ)``;
    equivalently (Janati et al. 2020, with their σ² = ε)
    ``½[|a − b|² + tr A + tr B − tr D + dε(1 − log 2ε) + ε log det(D + εI)]``.

    Returns:
      dict with ``cost`` (both forms agree; ``cost_janati`` is the second), ``cross_covariance`` (d, d),
      ``mutual_information``.
    """
    a, b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    A, B = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    d = a.shape[0]
    eye = np.eye(d)
    As = _sqrtm(A)
    D = _sqrtm(4 * As @ B @ As + epsilon**2 * eye)
    C = 0.5 * As @ D @ np.linalg.inv(As) - 0.5 * epsilon * eye
    M = eye - np.linalg.solve(A, C) @ np.linalg.solve(B, C.T)
    mi = -0.5 * np.linalg.slogdet(M)[1]
    cost = 0.5 * (np.sum((a - b) ** 2) + np.trace(A) + np.trace(B) - 2 * np.trace(C)) + epsilon * mi
    janati = 0.5 * (np.sum((a - b) ** 2) + np.trace(A) + np.trace(B) - np.trace(D)
                    + d * epsilon * (1 - np.log(2 * epsilon)) + epsilon * np.linalg.slogdet(D + epsilon * eye)[1])
    return {"cost": float(cost), "cost_janati": float(janati), "cross_covariance": C, "mutual_information": float(mi)}
