"""Estimates of µ*'s headline quantities, with standard errors (MATH.md §2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bolt.estimators.logz import log_z
from bolt.gibbs.result import SolveResult
from bolt.problem.model import Problem

__all__ = ["summarize", "effective_sample_size"]


def effective_sample_size(values: np.ndarray, chains: int) -> float:
    """Bulk ESS (ArviZ) of a scalar observable laid out as ``chains`` consecutive blocks."""
    if chains <= 1 and values.ndim == 1:
        return float(len(values))
    import arviz as az

    return float(az.ess(np.asarray(values).reshape(chains, -1)))


def summarize(key, problem: Problem, result: SolveResult, *, logz_samples: int = 20_000) -> dict:
    """risk, KL, log Z, free energy (each with a standard error), mean, covariance, W2²(µ*, γ_τ).

    For sample-based results the particles are draws of Γ(µ_K) and Ψ is that of µ_K, so
    ``KL = −(β/τ) E Ψ − log Z`` is exact for Γ(µ_K); R uses the U-statistic (no 1/N Maurey bias)
    with standard error ``2 sd(Ψ(w_i; µ̂)) / sqrt(ESS)`` (its influence function); F's standard
    error comes from its own influence function ``Ψ(w; µ̂) − Ψ(w; µ_K)`` and log Z's. Standard errors
    use the bulk ESS of Ψ over chains (Picard) or the particle count (MFLD). On the grid every
    quantity is exact quadrature and its standard error is 0.
    """
    from bolt.transport.w2 import w2_exact, w2_quantile_1d, w2_sliced

    P, wts = np.asarray(result.particles), np.asarray(result.weights)
    k1, k2 = jax.random.split(key)
    bt, lam = problem.beta / problem.tau, problem.tau / problem.beta
    psi = np.asarray(problem.psi_field(jnp.asarray(P), result.field), np.float64)
    out: dict = {}
    if result.method == "grid":
        lz, lz_se, lz_est = result.settings["log_z"], 0.0, "grid quadrature"
        e_psi, e_psi_se = float(wts @ psi), 0.0
        risk, risk_se = float(problem.risk(jnp.asarray(P), jnp.asarray(wts))), 0.0
        ess = float("inf")
        f_infl_se = 0.0
    else:
        est = log_z(k1, problem, result.field, logz_samples)
        lz, lz_se, lz_est = est
        chains = result.chains.shape[0] if result.chains is not None else 1
        ess = effective_sample_size(psi, chains)
        e_psi, e_psi_se = float(psi.mean()), float(psi.std(ddof=1) / np.sqrt(ess))
        risk = float(problem.risk(jnp.asarray(P), unbiased=True))
        own = np.asarray(problem.psi(jnp.asarray(P), jnp.asarray(P)), np.float64)
        risk_se = float(2 * own.std(ddof=1) / np.sqrt(ess))
        # F̂ = ½R̂ + λ KL̂ has per-draw influence Ψ(w; µ̂) − Ψ(w; µ_K): F is stationary at µ*, so
        # the large, opposite fluctuations of R̂ and KL̂ cancel.
        f_infl_se = float((own - psi).std(ddof=1) / np.sqrt(ess))
    kl = -bt * e_psi - lz
    kl_se = float(np.hypot(bt * e_psi_se, lz_se))
    mean = wts @ P
    cov = (wts[:, None] * (P - mean)).T @ (P - mean)

    # W2²(µ*, γ_τ)
    if result.method == "grid":
        prior_w = np.exp(-np.sum(P * P, 1) / (2 * problem.tau))
        prior_w /= prior_w.sum()
        w2 = w2_quantile_1d(P, P, wts, prior_w) if problem.d == 1 else (
            w2_exact(P, P, wts, prior_w) if len(P) <= 5000 else w2_sliced(P, P, wts, prior_w))
    else:
        prior = np.sqrt(problem.tau) * np.asarray(jax.random.normal(k2, P.shape))
        w2 = w2_quantile_1d(P, prior) if problem.d == 1 else (
            w2_exact(P, prior) if len(P) <= 5000 else w2_sliced(P, prior))
    out.update(
        risk=risk, risk_se=risk_se, kl=float(kl), kl_se=kl_se, log_z=float(lz), log_z_se=float(lz_se),
        log_z_estimator=lz_est, free_energy=float(problem.free_energy(risk, kl)),
        free_energy_se=float(np.hypot(f_infl_se, lam * lz_se)),
        expected_psi=e_psi, mean=mean.tolist(), covariance=cov.tolist(),
        w2_squared_to_prior=float(w2.w2_squared), w2_estimator=w2.estimator, ess=ess,
        residual=float(result.residual), converged=bool(result.converged), iterations=int(result.iterations),
        solver=result.method)
    return out
