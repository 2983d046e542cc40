"""Every claim of the theory (MATH.md §3) as a computable check with error bars.

Each check returns a :class:`Bound` entry: the left and right sides, the constant used, whether
``lhs <= rhs`` holds (is not violated by more than two combined standard errors; with exact
quadrature the SEs are 0 and this is the plain inequality), the standard error of each side (``nan`` where an
estimator has none, e.g. a maximum over draws), and the estimators used. Every function takes an
optional ``constant`` so that a check can be evaluated with a deliberately wrong constant — the
tests use this to show the checks can fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bolt.problem.spec import Realizable

__all__ = ["Bound", "kl_bound", "w2_bound", "talagrand", "realizable_risk", "oracle_inequality", "maurey",
           "corollary", "evaluate_bounds", "evaluate_run"]

NAN = float("nan")


@dataclass
class Bound:
    """One check ``lhs <= rhs``."""

    name: str
    lhs: float
    rhs: float
    constant: float
    holds: bool
    lhs_se: float
    rhs_se: float
    estimator: str
    statement: str

    def as_dict(self) -> dict:
        return asdict(self)


def _holds(lhs, rhs, lhs_se, rhs_se, k: float = 2.0) -> bool:
    """``lhs <= rhs`` unless violated by more than ``k`` combined standard errors (nan SEs count as 0)."""
    se = np.hypot(np.nan_to_num(lhs_se), np.nan_to_num(rhs_se))
    return bool(lhs <= rhs + k * se)


def _entry(name, lhs, rhs, constant, lhs_se, rhs_se, estimator, statement):
    return Bound(name, float(lhs), float(rhs), float(constant), _holds(lhs, rhs, lhs_se, rhs_se), float(lhs_se),
                 float(rhs_se), estimator, statement)


def kl_bound(problem, kl, kl_se, grad_sq_mean, grad_sq_se, constant=None) -> Bound:
    """KL(µ*‖γ_τ) ≤ κ β²/τ with the explicit κ = ½ E_{µ*}|∇Ψ(·; µ*)|² (log-Sobolev for γ_τ)."""
    c = 0.5 * grad_sq_mean if constant is None else constant
    scale = problem.beta**2 / problem.tau
    se = 0.5 * grad_sq_se * scale if constant is None else 0.0
    return _entry("kl_bound", kl, c * scale, c, kl_se, se, "KL: -(b/t)E Psi - log Z; E|grad Psi|^2 over draws",
                  "KL(mu*|gamma) <= kappa beta^2/tau, kappa = E|grad Psi|^2 / 2")


def w2_bound(problem, w2sq, w2sq_se, l_star, constant=None, w2_estimator="") -> Bound:
    """W2²(µ*, γ_τ) ≤ κ β² with the explicit κ = L*² = sup|∇Ψ(·; µ*)|² (max over draws)."""
    c = l_star**2 if constant is None else constant
    return _entry("w2_bound", w2sq, c * problem.beta**2, c, w2sq_se, NAN, f"W2^2: {w2_estimator}; L*: max over draws",
                  "W2^2(mu*, gamma) <= kappa beta^2, kappa = L*^2")


def talagrand(problem, kl, kl_se, w2sq, w2sq_se, constant=None, w2_estimator="") -> Bound:
    """Talagrand: W2²(µ, γ_τ)/(2τ) ≤ KL(µ‖γ_τ) (constant 1/(2τ))."""
    c = 1.0 / (2.0 * problem.tau) if constant is None else constant
    return _entry("talagrand", c * w2sq, kl, c, c * w2sq_se, kl_se, f"W2^2: {w2_estimator}; KL as kl_bound",
                  "W2^2(mu, gamma)/(2 tau) <= KL(mu|gamma)")


def realizable_risk(problem, risk, risk_se, constant=None) -> Bound | None:
    """If f = f̂(·; N(m, τI)): R(µ*) ≤ (2τ/β) KL(µ°‖γ_τ) = |m|²/β."""
    if not isinstance(problem.target, Realizable):
        return None
    m = np.asarray(problem.target.mean)
    kl0 = float(m @ m) / (2 * problem.tau)
    c = 2 * problem.tau / problem.beta if constant is None else constant
    return _entry("realizable_risk", risk, c * kl0, c, risk_se, 0.0, "U-statistic risk; closed-form KL(mu°)",
                  "R(mu*) <= (2 tau/beta) KL(mu°|gamma)")


def oracle_inequality(key, problem, risk, risk_se, kl, kl_se, mean, cov, n: int = 4000, constant=None) -> Bound:
    """R(µ*) + (2τ/β)KL(µ*) ≤ R(ν) + (2τ/β)KL(ν) for ν = N(mean, cov), the Gaussian fit of µ*."""
    from bolt.testing import gaussian_kl

    c = 2 * problem.tau / problem.beta if constant is None else constant
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    L = np.linalg.cholesky(cov + 1e-12 * np.eye(len(mean)))
    draws = mean + np.asarray(jax.random.normal(key, (n, len(mean)))) @ L.T
    r_nu = float(problem.risk(jnp.asarray(draws), unbiased=True))
    own = np.asarray(problem.psi(jnp.asarray(draws), jnp.asarray(draws)))
    r_nu_se = 2 * own.std(ddof=1) / np.sqrt(n)
    return _entry("oracle", risk + c * kl, r_nu + c * gaussian_kl(mean, cov, problem.tau), c,
                  np.hypot(risk_se, c * kl_se), r_nu_se, "nu = Gaussian fit of mu*; R(nu) by U-statistic",
                  "R(mu*) + (2tau/beta)KL(mu*) <= R(nu) + (2tau/beta)KL(nu)")


def maurey(key, problem, particles, weights=None, sizes=(2, 4, 8, 16, 32, 64), reps: int = 2000,
           identity_n: int = 16) -> list[Bound]:
    """Finite width: ``E R(µ̂_N) − R(µ) = (1/N)[E_µ K(W,W) − ∫∫K dµ dµ]`` for W_i iid µ.

    µ is the (weighted) particle measure itself, so the identity is exact; draws are resampled
    from it. Returns two entries: the identity at ``identity_n`` (|lhs − rhs| within 4 standard
    errors counts as holding) and the weighted least-squares log-log slope of the excess risk in
    N (weights from each point's Monte Carlo error) against −1 (within 4 standard errors).
    """
    P = np.asarray(particles, np.float64)
    w = np.full(len(P), 1.0 / len(P)) if weights is None else np.asarray(weights, np.float64)
    Pj, wj = jnp.asarray(P), jnp.asarray(w)
    r_mu = float(problem.risk(Pj, wj))
    gap = float(jnp.sum(wj * problem.kernel_diag(Pj)) - problem.interaction(Pj, wj))
    r0, ft = problem.R0(), problem.ftilde(Pj)  # f̃ once for all particles; resamples reuse it
    risk_batch = jax.jit(jax.vmap(lambda i: r0 + 2 * jnp.mean(ft[i]) + jnp.mean(problem.kernel(Pj[i], Pj[i]))))
    excess, ses = [], []
    for i, n in enumerate(sizes):
        idx = jax.random.choice(jax.random.fold_in(key, i), len(P), (reps, n), p=wj)
        r = np.asarray(risk_batch(idx)) - r_mu
        excess.append(r.mean())
        ses.append(r.std(ddof=1) / np.sqrt(reps))
    excess, ses, sizes = np.asarray(excess), np.asarray(ses), np.asarray(sizes, np.float64)
    j = int(np.argmin(np.abs(sizes - identity_n)))
    ident = Bound("maurey_identity", float(excess[j]), gap / sizes[j], 1.0 / sizes[j],
                  bool(abs(excess[j] - gap / sizes[j]) < 4 * ses[j]), float(ses[j]), 0.0,
                  f"{reps} resamples of N = {int(sizes[j])} from the particle measure",
                  "E R(mu_N) - R(mu) = (1/N)[E K(W,W) - int int K]")
    ok = excess > 2 * ses  # log needs a resolved, positive excess
    if ok.sum() >= 2:
        x, y, s = np.log(sizes[ok]), np.log(excess[ok]), ses[ok] / excess[ok]
        A = np.stack([x, np.ones_like(x)], 1) / s[:, None]
        cov = np.linalg.inv(A.T @ A)
        slope = float((cov @ A.T @ (y / s))[0])
        slope_se = float(np.sqrt(cov[0, 0]))
    else:
        slope, slope_se = NAN, NAN
    slope_b = Bound("maurey_slope", slope, -1.0, 1.0, bool(abs(slope + 1) < 4 * slope_se), slope_se, 0.0,
                    f"weighted log-log fit over N in {[int(v) for v in sizes[ok]]}", "excess risk ~ N^-1")
    return [ident, slope_b]


def corollary(problem, lazy: dict, risk_star: float, n: int, kappa: float, l_sigma: float,
              delta: float = 0.05, constant=None) -> list[Bound]:
    """The transport-map corollary (a), (b), (c) with κ = L_σ² R(γ_τ), and (c) with its explicit constant L_σ.

    ``constant`` replaces κ in (a)–(c); for the explicit form it is read as L_σ² (so L_σ = sqrt(constant)).
    """
    k = kappa if constant is None else constant
    b, t, log_d = problem.beta, problem.tau, np.log(1 / delta)
    out = [
        _entry("corollary_a", lazy["max_displacement"], k * b + k * np.sqrt(t * (np.log(n) + log_d)), k, NAN, 0.0,
               "max over N prior draws of |T(W_i) - W_i|",
               "max|T(W_i)-W_i| <= k beta + k sqrt(tau(log N + log 1/delta))"),
        _entry("corollary_b", np.sqrt(lazy["risk_transported"]), np.sqrt(max(risk_star, 0)) + k * np.sqrt(log_d / n), k,
               NAN, 0.0, "exact risk of the transported width-N net",
               "||f - f_N(T(W))|| <= ||f - f(mu*)|| + k sqrt(log(1/delta)/N)"),
        _entry("corollary_c", lazy["function_change_sq"], k * b + k * np.sqrt(t * log_d / n), k, NAN, 0.0,
               "exact L2(pi) norm of f_N(T(W)) - f_N(W)",
               "||f_N(T(W)) - f_N(W)||^2 <= k beta + k sqrt(tau log(1/delta)/N)"),
    ]
    c = l_sigma if constant is None else np.sqrt(constant)
    out.append(_entry("corollary_c_explicit", np.sqrt(lazy["function_change_sq"]), c * lazy["max_displacement"], c,
                      NAN, NAN, "L_sigma from problem constants", "||f_N(T(W)) - f_N(W)|| <= L_sigma max|T(W_i)-W_i|"))
    return out


def _w2_with_se(key, problem, P, w, grid: bool):
    from bolt.transport.w2 import w2_quantile_1d, w2_squared

    if grid:
        prior_w = np.exp(-np.sum(P * P, 1) / (2 * problem.tau))
        prior_w /= prior_w.sum()
        est = w2_quantile_1d(P, P, w, prior_w) if problem.d == 1 else w2_squared(P, P, w, prior_w)
        return est.w2_squared, 0.0, est.estimator
    prior = np.sqrt(problem.tau) * np.asarray(jax.random.normal(key, P.shape))
    if problem.d == 1:
        est = w2_squared(P, prior)
        halves = [w2_squared(P[i::2], prior[i::2]).w2_squared for i in range(2)]
        return est.w2_squared, float(abs(halves[0] - halves[1]) / 2), est.estimator + " (se from 2 splits)"
    from bolt.transport.w2 import w2_debiased

    est, se = w2_debiased(P, prior)
    return est.w2_squared, se, est.estimator


def evaluate_bounds(key, problem, particles, weights, summary: dict, *, grid: bool = False, delta: float = 0.05,
                    transport_draws: int = 1000) -> list[Bound]:
    """Evaluate every check for a solved problem (particles/weights of µ* and its summary)."""
    from bolt.transport.maps import lazy_training, monotone_map_1d, ot_assignment

    P = np.asarray(particles, np.float64)
    w = np.asarray(weights, np.float64)
    Pj, wj = jnp.asarray(P), jnp.asarray(w)
    keys = jax.random.split(key, 5)
    g = np.asarray(problem.grad_psi(Pj, Pj, wj))
    gsq = np.sum(g * g, 1)
    ess = summary.get("ess", len(P))
    ess = len(P) if ess is None or not np.isfinite(ess) else ess
    gsq_mean = float(w @ gsq)
    gsq_se = 0.0 if grid else float(gsq.std(ddof=1) / np.sqrt(ess))
    support = w > 1e-12 * w.max()
    l_star = float(np.sqrt(gsq[support].max()))
    w2sq, w2se, w2est = _w2_with_se(keys[0], problem, P, w, grid)
    kl, kl_se = summary["kl"], summary.get("kl_se", 0.0)
    consts = problem.constants()
    out = [kl_bound(problem, kl, kl_se, gsq_mean, gsq_se),
           w2_bound(problem, w2sq, w2se, l_star, w2_estimator=w2est),
           talagrand(problem, kl, kl_se, w2sq, w2se, w2_estimator=w2est)]
    rr = realizable_risk(problem, summary["risk"], summary.get("risk_se", 0.0))
    if rr is not None:
        out.append(rr)
    out.append(oracle_inequality(keys[1], problem, summary["risk"], summary.get("risk_se", 0.0), kl, kl_se,
                                 summary["mean"], summary["covariance"]))
    out += maurey(keys[2], problem, P, w)
    n = min(transport_draws, len(P))
    W = np.sqrt(problem.tau) * np.asarray(jax.random.normal(keys[3], (n, problem.d)))
    if problem.d == 1:
        TW = monotone_map_1d(problem.tau, P[:, 0], w)(W[:, 0])[:, None]
    elif grid:
        from bolt.transport.maps import barycentric_map

        TW = barycentric_map(W, P, None, w)
    else:
        idx = np.asarray(jax.random.choice(keys[4], len(P), (n,), replace=False))
        TW = ot_assignment(W, P[idx])
    lazy = lazy_training(problem, W, TW)
    out += corollary(problem, lazy, summary["risk"], n, consts["kappa"], np.sqrt(consts["L_sigma_squared"]), delta)
    return out


def evaluate_run(run_dir, *, problem=None, result=None, summary=None) -> list[Bound]:
    """Evaluate the bounds of a saved run and write ``RUN_DIR/bounds.json`` (atomically)."""
    from bolt.config import load_config, problem_from_config
    from bolt.errors import ResultsError
    from bolt.io import load_results, load_summary, write_json

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"bounds: no run directory at {run_dir}")
    if problem is None:
        if not (run_dir / "config.toml").is_file():
            raise ResultsError(f"bounds: {run_dir} has no config.toml")
        problem = problem_from_config(load_config(run_dir / "config.toml"))
    summary = load_summary(run_dir) if summary is None else summary
    if result is not None:
        P, w, method = result.particles, result.weights, result.method
    else:
        idata = load_results(run_dir / "results.nc")
        P = np.asarray(idata.particles["particles"].values)
        w = np.asarray(idata.particles["weights"].values)
        method = summary.get("solver", "")
    seed = int(summary.get("seed", 0))
    bounds = evaluate_bounds(jax.random.fold_in(jax.random.PRNGKey(seed), 11), problem, P, w, summary,
                             grid=method == "grid")
    write_json(run_dir / "bounds.json", [b.as_dict() for b in bounds])
    return bounds
