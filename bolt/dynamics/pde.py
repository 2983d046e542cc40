r"""Grid validation in d = 1: the HJB and Fokker–Planck residuals of the optimal control (MATH.md §4).

With ``V = V*`` from :func:`~bolt.dynamics.follmer.value_function` (Gauss–Hermite quadrature) and
``ρ_t`` the density of the bridge mixture ``Σ_j a_j N(t y_j, τ t (1 − t))``:

.. math::
   r_{HJB} = \partial_t V + \tfrac{\tau}{2} V'' - \tfrac12 (V')^2,\qquad
   r_{FP} = \partial_t \rho - (\rho V')' - \tfrac{\tau}{2}\rho''.

Both vanish for the exact solution; with central differences of step ``h`` in w and ``k`` in t
(``V'`` inside the Fokker–Planck flux is differentiated exactly with :func:`jax.grad`) they are
``O(h² + k²)`` — the tests measure that order under refinement.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bolt.dynamics.follmer import Potential, value_function
from bolt.dynamics.path import bridge_marginal_density
from bolt.errors import BoltError

__all__ = ["hjb_fp_residuals", "value_gradient"]


def value_gradient(x, t, potential: Potential, beta, tau, *, nodes: int = 64) -> np.ndarray:
    """``V*'(x, t)`` in d = 1 by differentiating the quadrature (so ``b* = −V*'``)."""
    X = jnp.asarray(np.asarray(x, np.float64).reshape(-1, 1))
    g = jax.grad(lambda W: jnp.sum(value_function(W, t, potential, beta, tau, nodes=nodes)))(X)
    return np.asarray(g[:, 0])


def hjb_fp_residuals(potential: Potential, particles, weights, beta: float, tau: float, x, t, h: float, k: float,
                     *, nodes: int = 64) -> dict:
    """HJB and Fokker–Planck residuals at points ``x`` (``(p,)``) and times ``t`` (``(q,)``, inside ``(k, 1 − k)``).

    Args:
      potential: Ψ(·; µ*) (d = 1).
      particles, weights: µ* as weighted nodes ``(m, 1)``, ``(m,)`` (the grid solution).
      beta, tau: β, τ.
      x, t: evaluation points and times.
      h, k: finite-difference steps in w and t.

    Returns:
      dict with ``hjb`` and ``fp``, ``(q, p)`` arrays of residuals, and ``rho`` ``(q, p)`` the density.
    """
    x = np.asarray(x, np.float64).reshape(-1)
    t = np.asarray(t, np.float64).reshape(-1)
    if np.any(t - k <= 0) or np.any(t + k >= 1):
        raise BoltError("hjb_fp_residuals: times must lie in (k, 1 - k)")
    P = np.asarray(particles, np.float64).reshape(-1)
    V = lambda xx, tt: np.asarray(value_function(jnp.asarray(xx)[:, None], tt, potential, beta, tau, nodes=nodes))
    rho = lambda xx, tt: bridge_marginal_density(xx, tt, P, weights, tau)
    hjb, fp, dens = [], [], []
    for tt in t:
        v0, vp, vm = V(x, tt), V(x + h, tt), V(x - h, tt)
        vt = (V(x, tt + k) - V(x, tt - k)) / (2 * k)
        v1 = (vp - vm) / (2 * h)
        v2 = (vp - 2 * v0 + vm) / h**2
        hjb.append(vt + 0.5 * tau * v2 - 0.5 * v1**2)
        r0, rp, rm = rho(x, tt), rho(x + h, tt), rho(x - h, tt)
        rt = (rho(x, tt + k) - rho(x, tt - k)) / (2 * k)
        flux = lambda xx, tt=tt: rho(xx, tt) * value_gradient(xx, tt, potential, beta, tau, nodes=nodes)
        div = (flux(x + h) - flux(x - h)) / (2 * h)
        fp.append(rt - div - 0.5 * tau * (rp - 2 * r0 + rm) / h**2)
        dens.append(r0)
    return {"hjb": np.asarray(hjb), "fp": np.asarray(fp), "rho": np.asarray(dens)}
