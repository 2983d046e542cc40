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

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["stein_features", "stein_weights", "stein_error_series", "cv_mean", "default_degree"]


def _multi_indices(d: int, degree: int) -> np.ndarray:
    """Exponents α of every monomial with ``1 ≤ |α| ≤ degree`` in ``d`` variables: ``(k, d)``."""
    out = [()]
    for _ in range(d):
        out = [t + (a,) for t in out for a in range(degree + 1)]
    idx = np.array([t for t in out if 1 <= sum(t) <= degree], dtype=int).reshape(-1, d)
    return idx[np.lexsort(idx.T[::-1])][np.argsort(idx.sum(1), kind="stable")]


def default_degree(d: int, n: int, max_features: int = 40) -> int:
    """The highest degree (1 to 3) whose monomials number at most ``min(max_features, n/80)``.

    Too many features for the draws make the standard error too small (the coefficients' own
    error is not in it): in d = 2 at n = 400, degree 3 (9 features) gave z-scores with sd 1.26 over
    300 replications, degree 2 gave 1.04; at n = 2000 degree 3 gave 1.03. Degree 4 in d = 1 at
    n = 1000 gave 1.24, so 3 is the cap.
    """
    from math import comb

    deg = 1
    while comb(d + deg + 1, deg + 1) - 1 <= min(max_features, n / 80) and deg < 3:
        deg += 1
    return deg


@partial(jax.jit, static_argnames=("degree",))
def stein_features(W, scores, degree: int = 2):
    """Stein images ``ΔP + ∇P·s`` of the monomials ``P = w^α``, ``1 ≤ |α| ≤ degree``: ``(n, k)``.

    ``∂_i w^α = α_i w^{α − e_i}`` and ``Δ w^α = Σ_i α_i(α_i − 1) w^{α − 2e_i}``. A JAX function
    (jitted, ``degree`` static; the monomials are fixed by ``d`` and ``degree``), in ``W``'s floating dtype.

    Args:
      W: ``(n, d)`` draws.
      scores: ``(n, d)`` the score of their law at the draws.
      degree: the highest monomial degree.
    """
    W = jnp.asarray(W)
    S = jnp.asarray(scores, W.dtype)
    n, d = W.shape
    alphas = _multi_indices(d, degree)
    # powers[p][:, i] = w_i^p for p = 0..degree (negative powers never used: their factor is 0)
    powers = [jnp.ones_like(W)]
    for _ in range(degree):
        powers.append(powers[-1] * W)

    def mono(a):
        out = jnp.ones(n, W.dtype)
        for i in range(d):
            if a[i] > 0:
                out = out * powers[a[i]][:, i]
        return out

    cols = []
    for a in alphas:
        col = jnp.zeros(n, W.dtype)
        for i in range(d):
            if a[i] == 0:
                continue
            lower = a.copy()
            lower[i] -= 1
            col = col + a[i] * mono(lower) * S[:, i]
            if a[i] >= 2:
                lower2 = a.copy()
                lower2[i] -= 2
                col = col + a[i] * (a[i] - 1) * mono(lower2)
        cols.append(col)
    return jnp.stack(cols, 1)


def _halves_fit(H, values=None):
    """Per half of the rows (the first ``n//2`` and the rest): the centred features, the half's mean
    features, ``(H_cᵀH_c)⁺`` and, with ``values``, the half's least-squares fit (intercept, slope)."""
    n = H.shape[0]
    out = []
    for rows in (slice(0, n // 2), slice(n // 2, n)):
        Hh = H[rows]
        mean = jnp.mean(Hh, 0)
        Hc = Hh - mean[None, :]
        inv = jnp.linalg.pinv(Hc.T @ Hc, hermitian=True)
        fit = None
        if values is not None:
            v = values[rows]
            fit = (jnp.mean(v), inv @ (Hc.T @ (v - jnp.mean(v))))
        out.append((rows, Hc, mean, inv, fit))
    return out


@jax.jit
def stein_weights(features):
    """Weights ``a`` (``Σ a_i = 1``) of draws whose features ``h`` (``(n, k)``, mean zero under the
    draws' law, :func:`stein_features`) they integrate to exactly zero: ``Σ a_i h_i = 0``.

    ``Σ a_i g_i`` is the cross-fitted regression control-variate estimate of ``E g`` for *every*
    ``g`` at once: the draws are split into halves (the first and the second half of the rows —
    whole chains when the rows are chain-major and the chains are even in number), and each
    half's ``ḡ − ĉ_gᵀ h̄`` takes ``ĉ_g`` from the least-squares fit of ``g`` on ``h`` in the *other*
    half. For half A and the other half B,
    ``a_i = 1/n − (n_B/n)(h_i − h̄_A)ᵀ((H_A − h̄_A)ᵀ(H_A − h̄_A))⁺ h̄_B``.
    Fitting and applying on the same draws biased the estimate by ``O(k/n)``: −0.25 SE at 250 draws
    (degree 2, d = 1); the halves are independent, so this is unbiased. Its error is given by
    :func:`stein_error_series`.
    Some weights may be negative. A JAX function.
    """
    H = jnp.asarray(features)
    n = H.shape[0]
    (_, Hca, ma, inva, _), (_, Hcb, mb, invb, _) = _halves_fit(H)
    na, nb = Hca.shape[0], Hcb.shape[0]
    wa = 1.0 / n - (nb / n) * (Hca @ (inva @ mb))
    wb = 1.0 / n - (na / n) * (Hcb @ (invb @ ma))
    return jnp.concatenate([wa, wb])


@jax.jit
def stein_error_series(values, features):
    """The per-draw series ``s`` whose mean's variance is the error of the :func:`stein_weights`
    estimate ``Σ a_i g_i`` of ``E g``: ``s_i = n a_i r_i``, ``r_i`` the residual of ``g`` at draw
    ``i`` from the least-squares fit on ``[1, features]`` in the other half. Since the weights
    integrate the features to zero, ``Σ a_i g_i − E g = Σ a_i e_i`` for the regression's population
    residuals ``e`` (exactly); out-of-sample residuals estimate ``e`` without the shrinkage of
    in-sample ones at high-leverage draws. Feed ``s`` to a variance-of-a-mean estimator (chains,
    autocorrelation). A JAX function.
    """
    g = jnp.asarray(values)
    H = jnp.asarray(features, g.dtype)
    n = H.shape[0]
    halves = _halves_fit(H, g)
    res = []
    for (rows, _, _, _, _), (_, _, mean_o, _, (icpt, slope)) in zip(halves, halves[::-1], strict=True):
        res.append(g[rows] - icpt - (H[rows] - mean_o[None, :]) @ slope)
    return n * stein_weights(H) * jnp.concatenate(res)


def cv_mean(values, features, ess_of=None) -> tuple[float, float, np.ndarray]:
    """Control-variate estimate of ``E[g]`` with its standard error.

    Least squares of ``values`` on ``[1, features]`` gives ``ĉ`` (cross-fitted: fitted on the odd
    draws and applied to the even ones, and vice versa); since ``E[h] = 0``
    exactly, the estimate is the mean of the adjusted series ``g − hᵀĉ``, and its standard error that series'
    standard deviation over ``sqrt(ESS)`` (``ess_of`` maps a series to its effective sample size; default: its length).

    Bias: for independent draws the two halves are independent and the estimate is unbiased. For
    MCMC draws the odd and even draws of a chain are neighbours, hence correlated, so ``ĉ`` is not
    independent of the draws it is applied to and the estimate is only *approximately* unbiased: its
    bias is of order ``k/ESS`` (``k`` features), like that of fitting and applying on the same draws
    but smaller, and it vanishes as the chains' autocorrelation does.

    Returns:
      ``(estimate, se, adjusted_values)``.
    """
    g = np.asarray(values, np.float64)
    H = np.asarray(features, np.float64)
    n = len(g)
    if n >= 8 * (H.shape[1] + 1):
        # cross-fitted: the coefficients applied to one half are fitted on the other, so the
        # estimate stays unbiased for independent draws (approximately for MCMC draws, whose odd and
        # even halves are correlated) and its error is what the residuals say (fitting and applying
        # on the same draws underestimates the error several-fold for high-degree features)
        adj = np.empty(n)
        for use, fit in ((slice(0, None, 2), slice(1, None, 2)), (slice(1, None, 2), slice(0, None, 2))):
            Hf = H[fit]
            coef, *_ = np.linalg.lstsq(Hf - Hf.mean(0), g[fit] - g[fit].mean(), rcond=None)
            adj[use] = g[use] - H[use] @ coef  # E[h] = 0 exactly: subtracting hᵀĉ keeps the mean
    else:  # too few draws to fit the coefficients: plain mean
        adj = g
    ess = float(len(adj)) if ess_of is None else float(ess_of(adj))
    return float(adj.mean()), float(adj.std(ddof=1) / np.sqrt(max(ess, 1.0))), adj
