r"""Costs of a control along simulated paths (MATH.md §4).

- control energy ``½ E ∫_0^1 |u_t|² dt`` (the mean over paths of the per-path energy the SDE
  accumulated) with its standard error;
- ``J(u) = ½ E ∫|u|² dt + (β/2) R(Law(W_1))`` with ``R`` the U-statistic over the endpoints (unbiased
  for the risk of the endpoint law) and a standard error from the per-path influence
  ``e_i + β Ψ(W_1^i; ν̂)`` (the influence of ``(β/2)R̂`` at a draw w is ``βΨ(w; ν)`` up to a constant).

The theory: for the Föllmer drift, energy = τ·KL(µ*‖γ_τ) and ``J = β F(µ*) = inf_u J``; any other
control has larger ``J``. For zero control ``W_1 ~ γ_τ`` and ``J = (β/2) R(γ_τ)`` exactly.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bolt.errors import BoltError

__all__ = ["control_energy", "endpoint_risk", "cost_J"]


def control_energy(result) -> tuple[float, float]:
    """``(½ E∫|u|² dt, its standard error)`` from an :class:`~bolt.dynamics.sde.SDEResult`."""
    e = np.asarray(result.energy, np.float64)
    if e.size < 2:
        raise BoltError("control_energy: needs at least 2 paths for a standard error")
    return float(e.mean()), float(e.std(ddof=1) / np.sqrt(e.size))


def endpoint_risk(problem, W1) -> tuple[float, float, np.ndarray]:
    """U-statistic ``R̂`` of the law of ``W1`` ``(n, d)``, its standard error and ``Ψ(W1_i; ν̂)`` ``(n,)``."""
    W = jnp.asarray(W1)
    if W.ndim != 2 or W.shape[0] < 2:
        raise BoltError(f"endpoint: expected (n >= 2, d) positions, got {tuple(W.shape)}")
    risk = float(problem.risk(W, unbiased=True))
    own = np.asarray(problem.self_psi(W), np.float64)
    return risk, float(2 * own.std(ddof=1) / np.sqrt(len(own))), own


def cost_J(problem, result) -> dict:
    """``J(u)`` of a simulated control, with the energy and endpoint risk it is made of.

    Returns:
      dict with ``J``, ``J_se``, ``control_energy``, ``control_energy_se``, ``endpoint_risk``,
      ``endpoint_risk_se``.
    """
    e = np.asarray(result.energy, np.float64)
    en, en_se = control_energy(result)
    risk, risk_se, own = endpoint_risk(problem, result.endpoint)
    beta = problem.beta
    infl = e + beta * own
    return {"J": en + 0.5 * beta * risk, "J_se": float(infl.std(ddof=1) / np.sqrt(len(infl))),
            "control_energy": en, "control_energy_se": en_se, "endpoint_risk": risk, "endpoint_risk_se": risk_se}
