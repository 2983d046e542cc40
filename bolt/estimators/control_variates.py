"""Zero-variance control variates from Stein's identity (Mira, Solgi & Imparato 2013; Assaraf & Caffarel 1999).

For a law p with score ``s = ∇ log p`` (known exactly for a Gibbs measure, without its normalising
constant) and any smooth polynomial ``P``, ``h = ΔP + ∇P·s`` has ``E_p[h] = 0``. Regressing an
integrand ``g`` on such ``h`` and subtracting the fit leaves the mean unchanged and removes the
part of ``g``'s variance that the polynomials' Stein images explain. With ``P`` up to degree two
the images span every quadratic polynomial when p is Gaussian, so for a nearly Gaussian Γ(µ)
(the theory's claim about µ*) the variance of ``E[Ψ]`` — and with it of KL and F — drops by a
large factor.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stein_features", "cv_mean"]


def stein_features(W, scores, degree: int = 2) -> np.ndarray:
    """Stein images ``ΔP + ∇P·s`` of the monomials of degree 1 and 2: ``(n, d + d(d+1)/2)``.

    Args:
      W: ``(n, d)`` draws.
      scores: ``(n, d)`` the score of their law at the draws.
      degree: 1 (linear monomials only) or 2.
    """
    W = np.asarray(W, np.float64)
    S = np.asarray(scores, np.float64)
    n, d = W.shape
    cols = [S]  # P = w_i: ∇P = e_i, ΔP = 0
    if degree >= 2:
        for i in range(d):
            for j in range(i, d):
                # P = w_i w_j: ∇P = w_j e_i + w_i e_j, ΔP = 2 δ_ij
                cols.append((W[:, j] * S[:, i] + W[:, i] * S[:, j] + 2.0 * (i == j))[:, None])
    return np.concatenate(cols, 1)


def cv_mean(values, features, ess_of=None) -> tuple[float, float, np.ndarray]:
    """Control-variate estimate of ``E[g]`` with its standard error.

    Least squares of ``values`` on ``[1, features]`` gives ``ĉ``; since ``E[h] = 0`` exactly, the
    estimate is the mean of the adjusted series ``g − hᵀĉ``, and its standard error that series'
    standard deviation over ``sqrt(ESS)`` (``ess_of`` maps a series to its effective sample size; default: its length).

    Returns:
      ``(estimate, se, adjusted_values)``.
    """
    g = np.asarray(values, np.float64)
    H = np.asarray(features, np.float64)
    n = len(g)
    Hc = H - H.mean(0)
    if n > 4 * (H.shape[1] + 1):
        coef, *_ = np.linalg.lstsq(Hc, g - g.mean(), rcond=None)
        adj = g - H @ coef  # E[h] = 0 exactly, so subtracting hᵀĉ keeps the mean
    else:  # too few draws to fit the coefficients: plain mean
        adj = g
    ess = float(len(adj)) if ess_of is None else float(ess_of(adj))
    return float(adj.mean()), float(adj.std(ddof=1) / np.sqrt(max(ess, 1.0))), adj
