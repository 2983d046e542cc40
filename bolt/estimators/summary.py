"""Estimates of µ*'s headline quantities, with standard errors (MATH.md §2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bolt.gibbs.result import SolveResult
from bolt.problem.model import Problem

__all__ = ["summarize", "summarize_to_precision", "w2_fields", "extend_draws", "effective_sample_size"]


def effective_sample_size(values: np.ndarray, chains: int) -> float:
    """Bulk ESS (ArviZ) of a scalar observable laid out as ``chains`` consecutive blocks."""
    if chains <= 1 and values.ndim == 1:
        return float(len(values))
    import arviz as az

    return float(az.ess(np.asarray(values).reshape(chains, -1)))


def summarize(key, problem: Problem, result: SolveResult, *, logz_samples: int = 100_000, w2: bool = True) -> dict:
    """risk, KL, log Z, free energy (each with a standard error), mean, covariance, W2²(µ*, γ_τ).

    ``w2=False`` leaves out W2² (the exact transport solves are most of the summary's time);
    :func:`w2_fields` with the same key adds exactly the fields it would have had.

    For sample-based results the particles are draws of Γ(µ_K) and Ψ is that of µ_K, so
    ``KL = −(β/τ) E Ψ − log Z`` is exact for Γ(µ_K). The estimators:

    - ``E Ψ``: the draws' mean with zero-variance Stein control variates
      (:mod:`bolt.estimators.control_variates`: polynomials up to the degree of
      :func:`~bolt.estimators.control_variates.default_degree`; Γ(µ_K)'s score is known exactly),
      which also reduce the variance of the other estimators' per-draw influence series;
    - log Z: importance sampling from a defensive Gaussian fit of the draws
      (:func:`~bolt.estimators.logz.log_z_importance`; its error is independent of the draws');
    - R: the U-statistic (no 1/N Maurey bias), corrected by the same control variates applied to
      its influence function ``2Ψ(w; µ̂)``;
    - F = ½R + (τ/β)KL, whose per-draw influence is ``Ψ(w; µ̂) − Ψ(w; µ_K)`` (F is stationary at
      µ*, so the large, opposite fluctuations of R̂ and KL̂ cancel), plus log Z's error.

    Standard errors use the bulk effective sample size (ArviZ, by chain) of each adjusted series:
    the Monte Carlo error of the final draws given µ_K. KL and R add the first-order effect of the
    noise in µ_K itself (:func:`_field_noise_sd`; ``kl_field_se``, ``risk_field_se``); F is stationary
    at µ*, so its share is second order and left out. On the grid every quantity is exact quadrature
    and its standard error is 0.
    """
    from bolt.estimators.control_variates import cv_mean, default_degree, stein_features
    from bolt.estimators.logz import log_z_importance
    P, wts = np.asarray(result.particles), np.asarray(result.weights)
    k1 = jax.random.split(key)[0]  # [1] is W2's (w2_fields)
    bt, lam = problem.beta / problem.tau, problem.tau / problem.beta
    Pj = jnp.asarray(P)
    psi = np.asarray(problem.psi_field(Pj, result.field), np.float64)
    out: dict = {}
    if result.method == "grid":
        lz, lz_se, lz_est = result.settings["log_z"], 0.0, "grid quadrature"
        e_psi = float(wts @ psi)
        risk, risk_se = float(problem.risk(Pj, jnp.asarray(wts))), 0.0
        ess = float("inf")
        f_infl_se = 0.0
    else:
        chains = result.chains.shape[0] if result.chains is not None else 1
        n_ind = int(result.settings.get("independent_draws", 0))  # trailing iid draws (extend_draws)
        m = len(P) - n_ind
        ess_of = lambda x: (effective_sample_size(x[:m], chains) if m else 0.0) + float(n_ind)
        H = stein_features(P, np.asarray(problem.score(Pj, result.field)), degree=default_degree(problem.d, len(P)))
        ess = ess_of(psi)
        e_psi, _, psi_adj = cv_mean(psi, H, ess_of)
        logz = log_z_importance(k1, problem, result.field, Pj, n=logz_samples)
        lz, lz_se, lz_est = logz.value, logz.se, logz.estimator
        # R's first-order influence is 2Ψ(w; µ*). The control variate is fitted to the fixed function
        # Ψ(·; µ_K) ≈ Ψ(·; µ*): fitting it to Ψ(w; µ̂), which depends on every draw, biases R by O(1/n)
        own = np.asarray(problem.self_psi(Pj), np.float64)  # memoised: R below and the bounds reuse it
        fit = psi - psi_adj  # hᵀĉ, with ĉ cross-fitted on psi
        risk = float(problem.risk(Pj, unbiased=True)) - 2.0 * float(fit.mean())
        # the U-statistic's degenerate second-order term: variance 2 E[K̄²]/(n(n−1)), K̄ the doubly
        # centred kernel; it matters once the control variates have removed most of the first-order one
        var2 = _degenerate_variance(problem, P, ess)
        # 2Ψ(w; µ̂) carries µ̂'s plug-in noise (variance 4E[K̄²]/n per draw, 2·var2 in the mean): the
        # degenerate term again, so it is removed from the series' share before var2 is added once
        risk_series = 2.0 * (own - fit)
        risk_var = np.var(risk_series, ddof=1) / max(ess_of(risk_series), 1.0)
        risk_se = float(np.sqrt(max(risk_var - 2.0 * var2, 0.0) + var2))
        # F = ½R + (τ/β)KL = ½R_U − mean Ψ(·; µ_K) − (τ/β) log Z: the control variates cancel, and
        # the per-draw influence Ψ(w; µ̂) − Ψ(w; µ_K) is small because F is stationary at µ*
        f_adj = own - psi
        # KL and F add log Z's error; an estimator of log Z that uses the same draws (bridge sampling)
        # reports its per-draw influence, so a correlation would be carried here too
        kl_se = _se(-bt * psi_adj - logz.influence, ess_of, logz.reference_var)
        # own − psi carries the plug-in noise of µ̂ (variance E[K̄²]/n per draw, i.e. var2/2 in the mean),
        # which is the degenerate term again: remove it once and add F's own share, var2/4
        f_var = max(np.var(f_adj - lam * logz.influence, ddof=1) / max(ess_of(f_adj), 1.0) - 0.5 * var2, 0.0)
        f_infl_se = float(np.sqrt(f_var + lam**2 * logz.reference_var + 0.25 * var2))
        # the noise of µ_K itself: KL(Γ(µ)) and R(Γ(µ)) move at first order with µ (F does not)
        field_sd = _field_noise_sd(problem, P, psi, result, ess)
        kl_field_se, risk_field_se = bt**2 * field_sd, 2.0 * bt * field_sd
        kl_se = float(np.hypot(kl_se, kl_field_se))
        risk_se = float(np.hypot(risk_se, risk_field_se))
        out.update(kl_field_se=float(kl_field_se), risk_field_se=float(risk_field_se))
    kl = -bt * e_psi - lz
    if result.method == "grid":
        kl_se = 0.0
    mean = wts @ P
    cov = (wts[:, None] * (P - mean)).T @ (P - mean)
    risk = float(risk)
    out.update(
        risk=risk, risk_se=float(risk_se), kl=float(kl), kl_se=kl_se, log_z=float(lz), log_z_se=float(lz_se),
        log_z_estimator=lz_est, free_energy=float(problem.free_energy(risk, kl)),
        free_energy_se=float(f_infl_se) if result.method != "grid" else 0.0,
        expected_psi=e_psi, mean=mean.tolist(), covariance=cov.tolist(), ess=ess,
        residual=float(result.residual), residual_floor=_last(result.trace, "residual_floor"),
        residual_p_value=_last(result.trace, "p_value"), drift_z=_last(result.trace, "drift_z"),
        drift_p_value=_last(result.trace, "drift_p_value"),
        final_drift_z=result.settings.get("final_drift_z"),
        final_drift_p_value=result.settings.get("final_drift_p_value"),
        converged=bool(result.converged),
        iterations=int(result.iterations), solver=result.method)
    if w2:
        out.update(w2_fields(key, problem, result, ess))
    return out


def w2_fields(key, problem: Problem, result: SolveResult, ess: float) -> dict:
    """The summary's W2²(µ*, γ_τ) fields for :func:`summarize`'s ``key``
    (:func:`bolt.transport.w2.w2_to_prior`; ``ess`` the draws' effective sample size)."""
    from bolt.transport.w2 import w2_to_prior

    w2 = w2_to_prior(jax.random.split(key)[1], result.particles, result.weights, problem.tau,
                     grid=result.method == "grid", ess=ess)
    return {"w2_squared_to_prior": float(w2.w2_squared), "w2_squared_to_prior_se": float(w2.se),
            "w2_estimator": w2.estimator}


def _degenerate_variance(problem: Problem, P: np.ndarray, n_eff: float, m: int = 600) -> float:
    """``2 E[K̄(w, w')²] / (n(n − 1))`` from the doubly centred kernel on (at most) ``m`` of the draws."""
    sub = jnp.asarray(P[:: max(1, len(P) // m)][:m])
    K = np.asarray(problem.kernel(sub, sub), np.float64)
    Kc = K - K.mean(0) - K.mean(1)[:, None] + K.mean()
    off = Kc[~np.eye(len(Kc), dtype=bool)]
    n = max(float(n_eff), 2.0)
    return float(2.0 * np.mean(off**2) / (n * (n - 1.0)))


def _field_weights_sq(result: SolveResult) -> float:
    """``Σ a_i²`` of the field µ_K the final draws were sampled from, as the solver built it:
    MFLD's N particles; Picard's damped buffer after ``iterations − 1`` updates, with µ_0's block while
    it is still there (:func:`~bolt.gibbs.picard.field_weights_sq`); 0 for any other result, whose field
    is taken as exact."""
    st = result.settings
    if result.method == "mfld":
        return 1.0 / float(st["particles"])
    if not result.method.startswith("picard"):  # a field given exactly (e.g. the grid's µ* with iid draws)
        return 0.0
    from bolt.gibbs.picard import field_weights_sq

    route = "arcsine" if result.field.particles.shape[0] else "expectation"
    return field_weights_sq(route, st["damping"], st["particles"], st["buffer"], result.iterations - 1)


def _field_noise_sd(problem: Problem, P: np.ndarray, psi: np.ndarray, result: SolveResult, ess: float,
                    n_w: int = 4000, n_v: int = 2000) -> float:
    r"""Standard deviation of ``∫ g d(µ_K − µ)`` with ``g(v) = Cov_{W∼Γ(µ_K)}(Ψ(W; µ_K), K(W, v))``.

    For ν = Γ(µ), a perturbation δµ of the field moves ``KL(ν‖γ_τ)`` by ``(β/τ)² ∫ g dδµ`` and ``R(ν)``
    by ``−2(β/τ) ∫ g dδµ`` (F by nothing: it is stationary). µ_K is a weighted empirical measure of
    MCMC draws, so ``Var ∫ g dδµ ≈ Var_µ(g) · Σ a_i² · n/ESS``; ``g`` is estimated from ``n_w`` of the
    final draws at ``n_v`` others (both ≈ µ*). When Picard's blocks carry Stein control-variate weights
    (``settings["field_cv_degree"]``, :func:`~bolt.gibbs.picard.block_weights`), ``Var_µ(g)`` is that of
    ``g``'s control-variate error series (:func:`~bolt.estimators.control_variates.stein_error_series`:
    its residual after regression on the Stein images of the same degree, with leverage) at those
    draws, with the score of Γ(µ_K) — the law of the final draws and, at a fixed point, of the
    field's blocks.
    """
    n = len(P)
    W = P[:: max(1, n // n_w)][:n_w]
    c = psi[:: max(1, n // n_w)][:n_w]
    c = c - c.mean()
    V = P[max(1, n // n_w) // 2:: max(1, n // n_v)][:n_v]
    K = np.asarray(problem.kernel(jnp.asarray(W), jnp.asarray(V)), np.float64)
    g = c @ (K - K.mean(0)) / (len(W) - 1)
    degree = int(result.settings.get("field_cv_degree", 0)) if result.method.startswith("picard") else 0
    if degree:
        from bolt.estimators.control_variates import stein_error_series, stein_features

        Vj = jnp.asarray(V)
        g = np.asarray(stein_error_series(g, stein_features(Vj, problem.score(Vj, result.field), degree)))
    corr = max(1.0, n / max(float(ess), 1.0))
    return float(np.sqrt(np.var(g, ddof=1) * _field_weights_sq(result) * corr))


def _se(series, ess_of, extra_var: float = 0.0) -> float:
    """Standard error of a mean from a per-draw influence series (ESS-corrected) plus an independent variance."""
    v = np.var(series, ddof=1) / max(ess_of(series), 1.0)
    return float(np.sqrt(v + extra_var))


def _last(trace: dict, name: str):
    v = trace.get(name)
    return float(v[-1]) if v is not None and len(v) else None


def extend_draws(key, problem: Problem, result: SolveResult, n_new: int, *, n_steps: int = 60) -> SolveResult:
    """``result`` with ``n_new`` more draws of Γ(µ_K) appended (independent MALA chains of
    :func:`~bolt.gibbs.refresh.gibbs_draws`, started at draws resampled from the current ones).

    The new draws are counted as independent (``settings["independent_draws"]``); µ_K is unchanged.
    """
    from dataclasses import replace

    from bolt.gibbs.refresh import gibbs_draws

    P = np.asarray(result.particles)
    k1, k2 = jax.random.split(key)
    start = P[np.asarray(jax.random.choice(k1, len(P), (int(n_new),)))]
    new = np.asarray(gibbs_draws(k2, problem, result.field, jnp.asarray(start), n_steps=n_steps).draws)
    allp = np.concatenate([P, new])
    settings = dict(result.settings, independent_draws=int(result.settings.get("independent_draws", 0)) + len(new))
    return replace(result, particles=allp, weights=np.full(len(allp), 1.0 / len(allp)), settings=settings)


def summarize_to_precision(key, problem: Problem, result: SolveResult, *, target_rel_se: float = 0.01,
                           max_draws: int = 32_000, quantities=("kl", "free_energy"),
                           logz_samples: int = 100_000) -> tuple[dict, SolveResult]:
    """Summarize, drawing more from Γ(µ_K) (:func:`extend_draws`) until every quantity in
    ``quantities`` has relative standard error at most ``target_rel_se``, or ``max_draws`` is reached.

    More draws of Γ(µ_K) do not reduce the part of an error bar that is the noise of µ_K itself
    (``kl_field_se``, ``risk_field_se``): a quantity whose field part alone is above the target gets
    no draws on its account (the others still do), and ``precision_note`` says so (a larger
    ``solver.particles`` is what shrinks it).

    Returns the summary (with ``target_rel_se``, ``precision_reached``, ``precision_note`` and
    ``draws``) and the possibly extended result. The grid is exact and is returned as it is.
    W2² (which no stopping decision uses) is estimated once, from the final draws.
    """
    k0, key = jax.random.split(key)
    sk = k0  # the key of the summary kept: W2² is added with it at the end
    s = summarize(sk, problem, result, logz_samples=logz_samples, w2=False)
    rounds = 0
    note = ""

    def rel(q, part=""):
        return s.get(q + part + "_se", 0.0) / max(abs(s[q]), 1e-300)

    while result.method != "grid":
        n = len(result.particles)
        if max(rel(q) for q in quantities) <= target_rel_se:
            break
        floor = {q: rel(q, "_field") for q in quantities}
        stuck = [q for q in quantities if floor[q] >= target_rel_se]
        note = "; ".join(f"{q}: the noise of the field mu_K alone is {floor[q]:.2%} of it, above the target "
                         f"{target_rel_se:.2%}, and more draws of Gamma(mu_K) do not reduce it (raise "
                         f"solver.particles)" for q in stuck)
        todo = [q for q in quantities if q not in stuck and rel(q) > target_rel_se]
        if not todo:  # the rest are at the target already
            break
        if n >= max_draws:
            note = "; ".join(filter(None, [note, f"output.max_draws = {max_draws} reached"]))
            break
        ess = float(s["ess"]) if np.isfinite(s["ess"]) else float(n)
        # the draws' share of each error bar falls like 1/sqrt(ESS); the field's share does not move
        need = max((rel(q) ** 2 - floor[q] ** 2) / (target_rel_se**2 - floor[q] ** 2) for q in todo)
        want = int(np.ceil(ess * (need * 1.1 - 1.0)))  # new draws count as independent
        n_new = int(min(max(want, n // 4), max_draws - n))
        result = extend_draws(jax.random.fold_in(key, 2 * rounds), problem, result, n_new)
        sk = jax.random.fold_in(key, 2 * rounds + 1)
        s = summarize(sk, problem, result, logz_samples=logz_samples, w2=False)
        rounds += 1
    s.update(w2_fields(sk, problem, result, s["ess"]))
    reached = result.method == "grid" or max(rel(q) for q in quantities) <= target_rel_se
    s.update(target_rel_se=target_rel_se, precision_reached=bool(reached), precision_note="" if reached else note,
             draws=len(result.particles))
    return s, result
