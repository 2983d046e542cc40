"""``bolt bridge RUN_DIR``: rebuild the path measure of a solved run and check the identities of MATH.md §4.

:func:`bridge_checks` simulates the controlled SDE from 0 with the Föllmer drift of the run's µ*
(from the potential, or from the particles), the bridge mixture, the zero control and the greedy
drift, and returns the JSON-ready results (documented key by key in ``docs/bridge.md``) and an
``xarray.Dataset`` of paths; :func:`evaluate_run` reads a run directory and writes ``bridge.json``
and ``bridge.nc`` atomically.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bolt.errors import ResultsError
from bolt.verdicts import verdict

__all__ = ["bridge_checks", "drift_bound_check", "ess_summary", "evaluate_run", "load_run_measure", "DRIFTS",
           "SAVE_TIMES", "MARGINAL_TIMES", "NO_SAVED_FIELD"]

DRIFTS = ("potential", "samples")
SAVE_TIMES = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
MARGINAL_TIMES = (0.25, 0.5, 0.75)
#: k (in standard errors) for the two-sample W2 checks, whose null spread is estimated from few replicates.
K_W2 = 3.0
#: Grid nodes with weight below this fraction of the largest are dropped from µ* (no visible mass).
PRUNE = 1e-13
#: ``settings["field"]`` and the energy identity's note for a run saved without its field µ_K (an older bolt)
NO_SAVED_FIELD = ("results.nc has no field group (a run from an older bolt): Psi is that of the saved draws, not of "
                  "mu_K, and tau_kl_se misses the draws' own noise; rerun with this bolt for a calibrated check")
#: Why ``drift_bound`` cannot be judged for the samples drift.
WHY_NOT_BOUNDED = ("the drift of the bridge to a finite particle set is not bounded by beta L*: it grows like "
                   "(1 - t)^(-1/2) near t = 1 (|b| ~ |y - w|/(1 - t), |y - w| ~ sqrt(tau (1 - t))); the bound is "
                   "about the potential drift (use --drift potential)")
#: What ``ess.jackknife_fallback`` > 0 means.
FALLBACK_NOTE = ("path-steps where one importance draw carried the weight (ESS < 2 in a half): the drift there is "
                 "the plain self-normalised ratio, not jackknifed (its O(1/M) bias stays); raise --inner")


def load_run_measure(run_dir, command: str = "bridge"):
    """``(problem, particles, weights, summary, method)`` of a finished run (one-line errors): the config, the
    manifest (:func:`bolt.rundir.verify_run_config`) and the contents (finite, shapes, weights) checked."""
    from bolt.config import problem_from_config
    from bolt.io import load_measure, load_summary
    from bolt.rundir import check_summary_fits, verify_run_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"{command}: no run directory at {run_dir}")
    if not (run_dir / "config.toml").is_file():
        raise ResultsError(f"{command}: {run_dir} has no config.toml (not a bolt run directory)")
    problem = problem_from_config(verify_run_config(run_dir, command))  # refuses an edited or foreign file
    summary = check_summary_fits(load_summary(run_dir), problem.d, run_dir / "summary.json")
    P, w, _ = load_measure(run_dir, problem.d)
    return problem, P, w / w.sum(), summary, summary.get("solver", "")


def _w2(x, y):
    from bolt.transport.w2 import w2_squared

    return w2_squared(np.asarray(x), np.asarray(y), max_exact=2000)


def _null_w2(key, sampler, n: int, reps: int):
    """Mean and sd of W2² between two independent size-``n`` samples of the same law."""
    vals = []
    for r in range(reps):
        a, b = sampler(jax.random.fold_in(key, 2 * r), n), sampler(jax.random.fold_in(key, 2 * r + 1), n)
        vals.append(_w2(a, b).w2_squared)
    vals = np.asarray(vals)
    return float(vals.mean()), float(vals.std(ddof=1))


def _mu_sampler(P, w, grid: bool, spacing: float):
    """Draws of µ*: weighted resampling; on a grid, spread uniformly over the cell (the piecewise-constant
    density), so that two samples do not share atoms."""

    def draw(key, n):
        k1, k2 = jax.random.split(key)
        idx = np.asarray(jax.random.choice(k1, len(P), (n,), p=jnp.asarray(w)))
        x = P[idx]
        if grid:
            x = x + spacing * (np.asarray(jax.random.uniform(k2, x.shape)) - 0.5)
        return x

    return draw


def _disjoint_halves(P):
    """For uniform-weight draws: two samplers of disjoint random subsets (no shared atoms)."""

    def draw_pair(key, n):
        perm = np.asarray(jax.random.permutation(key, len(P)))
        return P[perm[:n]], P[perm[n:2 * n]]

    return draw_pair


def drift_bound_check(res, potential, support, beta: float, informative: bool):
    """The check ``|b| ≤ βL*`` of a simulated SDE: ``(Verdict, bridge.json's drift_bound entry)``.

    ``lhs`` is the largest ``|b|`` over steps and paths and ``lhs_se`` the drift estimator's standard error of
    ``|b|`` at that path and step (:class:`~bolt.dynamics.sde.SDEResult` ``drift_max_se``; 0 for an exact drift);
    ``L* = max |∇Ψ|`` over ``support`` (µ*) and the saved path points, taken as exact. Near t = 1 the potential
    drift tends to ``−β∇Ψ`` at the points that define L*, so the margin is small and the SE decides.
    ``informative=False`` (the samples drift) reports it as "not informative" (:data:`WHY_NOT_BOUNDED`).
    """
    d = res.paths.shape[-1]
    pts = np.concatenate([np.asarray(support), res.paths.reshape(-1, d)], 0)
    g = np.asarray(potential.grad_psi(jnp.asarray(pts)))
    l_star = float(np.sqrt(np.max(np.sum(g * g, 1))))
    k = int(np.argmax(res.drift_max))
    max_drift = float(res.drift_max[k])
    max_se = 0.0 if res.drift_max_se is None else float(res.drift_max_se[k])
    v = verdict("drift_bound", max_drift, beta * l_star, max_se, 0.0, constant=beta,
                estimator="max over steps and paths of |b|, with the drift estimator's SE at that path and step; "
                          "L* = max |grad Psi| over mu* and the path points",
                statement="|b*| <= beta L*", source="MATH.md §4", informative=informative, why_not=WHY_NOT_BOUNDED)
    return v, {"max_drift": max_drift, "max_drift_se": max_se, "max_drift_time": float(res.grid[k]),
               "L_star": l_star, "beta_L_star": beta * l_star, "holds": v.holds}


def ess_summary(res) -> dict:
    """bridge.json's ``ess`` entry: the drift estimator's ESS over steps and the jackknife's fallbacks."""
    n_fb = 0 if res.fallback is None else int(np.sum(res.fallback))
    return {"min": float(np.min(res.ess_min)), "mean": float(np.mean(res.ess_mean)),
            "jackknife_fallback": n_fb, "jackknife_fallback_note": FALLBACK_NOTE if n_fb else ""}


def bridge_checks(key, problem, particles, weights, summary: dict, *, n: int = 1000, steps: int = 100,
                  drift: str = "potential", inner: int = 32, grid: bool = False, null_reps: int = 6,
                  progress_bar: bool | None = None, field=None) -> tuple[dict, object]:
    """The path measure of µ* and its checks; returns ``(bridge_json, xarray.Dataset)``.

    Args:
      key: PRNG key.
      problem: the problem.
      particles, weights: µ* as a weighted particle set.
      summary: the run's summary (``kl``, ``kl_se``, ``free_energy``, ``free_energy_se``, ``mean``, ``covariance``).
      n: SDE paths.
      steps: K of the warped time grid ``1 − (1 − k/K)²`` (the save times are added).
      drift: ``"potential"`` (Föllmer drift by importance sampling over Ψ(·; µ*)) or ``"samples"``
        (exact drift of the bridge to the particle measure).
      inner: importance draws per position and step (potential drift).
      grid: µ* is a quadrature grid (the grid solver): µ* draws are spread over grid cells.
      null_reps: replicates of the two-sample W2² null.
      progress_bar: ``None``: when stderr is a terminal.
      field: the :class:`~bolt.problem.Field` of µ_K whose Gibbs measure the particles sample (a solve's
        ``result.field``, or the one saved in ``results.nc``). The SDE then ends at Γ(µ_K), the law the
        summary's KL is of, so µ_K's own noise is common to both sides of the energy identity and
        ``tau_kl_se`` is τ times the Monte Carlo error of KL̂ given µ_K (``kl_se`` without ``kl_field_se``).
        ``None``: Ψ(·; µ̂) of the particles themselves, whose KL differs from the summary's at first
        order in the field's noise, and ``tau_kl_se`` = τ·``kl_se`` (too small: it misses that noise).
    """
    import xarray as xr

    from bolt.dynamics.costs import cost_J
    from bolt.dynamics.path import bridge_marginal_moments, bridge_paths_from_zero
    from bolt.dynamics.sde import function_drift, potential_drift, samples_drift, simulate
    from bolt.errors import BoltError

    if drift not in DRIFTS:
        raise BoltError(f"drift: expected one of {list(DRIFTS)}, got {drift!r}")
    if int(n) < 10:
        raise BoltError(f"particles: need at least 10 paths, got {n}")
    P = np.asarray(particles, np.float64)
    w = np.asarray(weights, np.float64)
    keep = w > PRUNE * w.max()
    Pk, wk = P[keep], w[keep] / w[keep].sum()
    beta, tau, d = problem.beta, problem.tau, problem.d
    pot = _potential(problem, Pk, wk, field)
    keys = jax.random.split(key, 8)
    if drift == "potential":
        dr = potential_drift(pot, beta, tau, inner=inner)
    else:
        dr = samples_drift(jnp.asarray(Pk), jnp.asarray(wk), tau)
    res = simulate(keys[0], dr, tau, int(n), d, steps=steps, save_times=SAVE_TIMES, progress_bar=progress_bar)
    costs = cost_J(problem, res)
    greedy = simulate(keys[1], function_drift(lambda W, t: -beta * pot.grad_psi(W)), tau, int(n), d, steps=steps,
                      save_times=(1.0,), progress_bar=False)
    costs_g = cost_J(problem, greedy)
    j_zero = 0.5 * beta * problem.risk_at_prior()

    tau_kl, tau_kl_se, tau_kl_field_se = _tau_kl(summary, tau, field is not None)
    beta_f, beta_f_se = beta * summary["free_energy"], beta * float(summary.get("free_energy_se") or 0.0)
    end = res.endpoint
    end_mean = end.mean(0)
    end_cov = np.atleast_2d(np.cov(end.T))

    # endpoint against µ*: two-sample W2² and its null level
    spacing = 0.0
    if grid:
        u = np.unique(P[:, 0])
        spacing = float(np.min(np.diff(u))) if len(u) > 1 else 0.0
    uniform = np.allclose(w, w[0])
    if not grid and uniform and len(P) >= 4:
        m = min(int(n), len(P) // 2)
        halves = _disjoint_halves(P)
        ref = halves(keys[2], m)[0]
        null = [_w2(*halves(jax.random.fold_in(keys[3], r), m)).w2_squared for r in range(null_reps)]
        noise, noise_sd = float(np.mean(null)), float(np.std(null, ddof=1))
        sde_end = end[:m]
    else:
        m = int(n)
        draw = _mu_sampler(P, w, grid, spacing)
        ref = draw(keys[2], m)
        noise, noise_sd = _null_w2(keys[3], draw, m, null_reps)
        sde_end = end
    est = _w2(sde_end, ref)
    prior = np.sqrt(tau) * np.asarray(jax.random.normal(keys[4], (m, d)))
    prior_w2 = _w2(prior, ref).w2_squared

    # marginals of the SDE against the bridge mixture µ*_t = Law(t W_1 + sqrt(τ t(1 − t)) ξ)
    bridge, _ = bridge_paths_from_zero(keys[5], jnp.asarray(P), jnp.asarray(w), SAVE_TIMES, tau, int(n))
    bridge = np.asarray(bridge)
    mu_mean, mu_cov = np.asarray(summary["mean"], np.float64), np.atleast_2d(np.asarray(summary["covariance"]))
    marg, verdicts = [], []
    for t in MARGINAL_TIMES:
        s = SAVE_TIMES.index(t)
        x = res.paths[:, s]
        bm, bc = bridge_marginal_moments(mu_mean, mu_cov, t, tau)
        z = (x.mean(0) - bm) / np.sqrt(np.diag(bc) / len(x))

        def mix_draw(k, nn, t=t):
            p, _ = bridge_paths_from_zero(k, jnp.asarray(P), jnp.asarray(w), (t,), tau, nn)
            return np.asarray(p)[:, 0]

        w2t = _w2(x, bridge[:, s]).w2_squared
        nm, nsd = _null_w2(keys[6], mix_draw, int(n), null_reps)
        marg.append({"t": t, "sde_mean": x.mean(0), "bridge_mean": bm, "mean_z": z,
                     "sde_variance": x.var(0, ddof=1), "bridge_variance": np.diag(bc),
                     "w2_squared": w2t, "w2_noise": nm, "w2_noise_sd": nsd})
        verdicts.append(verdict(f"marginal_t{t:g}", w2t, nm, nsd, nsd / np.sqrt(null_reps), kind="equal", k=K_W2,
                                estimator=f"two-sample W2^2 ({est.estimator}) vs {null_reps} null pairs",
                                statement=f"SDE marginal at t = {t:g} equals the bridge mixture mu*_t",
                                source="MATH.md §4 (marginals)"))

    pot_drift = drift == "potential"
    v_bound, bound = drift_bound_check(res, pot, Pk, beta, pot_drift)
    why = ("the drift to a finite particle set has infinite energy as the time step goes to 0; "
           "the identities are about the potential drift (use --drift potential)")
    verdicts = [
        verdict("control_energy_identity", costs["control_energy"], tau_kl, costs["control_energy_se"], tau_kl_se,
                kind="equal", k=5.0, estimator=f"SDE ({drift} drift), {n} paths, {len(res.grid) - 1} steps",
                statement="1/2 E int |u|^2 dt = tau KL(mu*|gamma)", source="MATH.md §4 (Girsanov, Föllmer)",
                informative=pot_drift, why_not=why),
        verdict("J_identity", costs["J"], beta_f, costs["J_se"], beta_f_se, kind="equal", k=5.0,
                estimator="energy + (beta/2) U-statistic risk of the endpoints", statement="J(Föllmer) = beta F(mu*)",
                source="MATH.md §4", informative=pot_drift, why_not=why),
        verdict("endpoint_w2", est.w2_squared, noise, noise_sd, noise_sd / np.sqrt(null_reps), kind="equal", k=K_W2,
                estimator=f"two-sample W2^2 ({est.estimator}) vs {null_reps} null pairs of mu* draws",
                statement="SDE endpoint W2^2 to mu* is at the two-sample noise level", source="MATH.md §4"),
        verdict("J_zero_control", beta_f, j_zero, beta_f_se, 0.0, estimator="J(0) = (beta/2) R(gamma_tau) exactly",
                statement="beta F(mu*) = inf J <= J(zero control)", source="MATH.md §4"),
        verdict("J_greedy", beta_f, costs_g["J"], beta_f_se, costs_g["J_se"],
                estimator=f"SDE with u = -beta grad Psi(W; mu*), {n} paths", statement="beta F(mu*) <= J(greedy)",
                source="MATH.md §4 (greedy approximations)"),
        v_bound,
    ] + verdicts

    out = {
        "settings": {"particles": int(n), "steps": int(steps), "steps_total": len(res.grid) - 1, "drift": drift,
                     "inner": int(inner) if pot_drift else None, "save_times": list(SAVE_TIMES),
                     "marginal_times": list(MARGINAL_TIMES), "time_grid": "1 - (1 - k/K)^2 plus the save times",
                     "null_replicates": int(null_reps), "mu_star_support": int(keep.sum()),
                     "field": "mu_K" if field is not None else "draws"},
        "control_energy": costs["control_energy"], "control_energy_se": costs["control_energy_se"],
        "control_energy_note": "" if pot_drift else why,
        "tau_kl": tau_kl, "tau_kl_se": tau_kl_se, "tau_kl_field_se": tau_kl_field_se,
        "J": costs["J"], "J_se": costs["J_se"], "beta_F": beta_f, "beta_F_se": beta_f_se,
        "endpoint_risk": costs["endpoint_risk"], "endpoint_risk_se": costs["endpoint_risk_se"],
        "J_zero_control": j_zero, "J_greedy": costs_g["J"], "J_greedy_se": costs_g["J_se"],
        "endpoint_mean": end_mean, "endpoint_covariance": end_cov,
        "mu_star_mean": mu_mean, "mu_star_covariance": mu_cov,
        "endpoint_w2_squared": est.w2_squared, "endpoint_w2_noise": noise, "endpoint_w2_noise_sd": noise_sd,
        "endpoint_w2_estimator": est.estimator, "prior_w2_squared": prior_w2,
        "marginal_checks": marg,
        "drift_bound": bound,
        "ess": ess_summary(res),
        "verdicts": [v.as_dict() for v in verdicts],
    }
    ds = xr.Dataset(
        {"paths": (("particle", "time", "w_dim"), res.paths),
         "bridge_paths": (("particle", "time", "w_dim"), bridge),
         "energy": (("particle",), res.energy),
         "ess_mean": (("step",), res.ess_mean), "ess_min": (("step",), res.ess_min),
         "drift_max": (("step",), res.drift_max), "drift_max_se": (("step",), res.drift_max_se),
         "jackknife_fallback": (("step",), res.fallback), "step_time": (("step",), res.grid[:-1])},
        coords={"particle": np.arange(int(n)), "time": np.asarray(SAVE_TIMES), "w_dim": np.arange(d),
                "step": np.arange(len(res.grid) - 1)})
    ds.attrs.update(drift=drift, beta=beta, tau=tau, description="bolt bridge: SDE paths from 0 under the "
                    "Föllmer drift of mu*, the bridge-mixture paths, per-path control energy, per-step drift ESS")
    return out, ds


def _potential(problem, P, w, field):
    """Ψ(·; µ_K) of a given field, else Ψ(·; µ̂) of the weighted particles."""
    if field is None:
        from bolt.dynamics.follmer import problem_potential

        return problem_potential(problem, jnp.asarray(P), jnp.asarray(w))
    from bolt.dynamics.follmer import Potential

    return Potential(lambda W: problem.psi_field(W, field), lambda W: problem.grad_psi_field(W, field))


def _tau_kl(summary: dict, tau: float, of_field: bool) -> tuple[float, float, float]:
    """τ·KL from the summary, its SE for the energy identity, and τ·``kl_field_se`` (the noise of µ_K).

    ``of_field``: the SDE ends at Γ(µ_K), so only KL̂'s Monte Carlo error given µ_K counts
    (``kl_se² = mc² + kl_field_se²``, :func:`bolt.estimators.summary.summarize`).
    """
    kl_se, field_se = float(summary.get("kl_se") or 0.0), float(summary.get("kl_field_se") or 0.0)
    se = np.sqrt(max(kl_se**2 - field_se**2, 0.0)) if of_field else kl_se
    return tau * summary["kl"], tau * float(se), tau * field_se


def evaluate_run(run_dir, *, particles: int = 1000, steps: int = 100, drift: str = "potential", inner: int = 32,
                 seed: int | None = None, quiet: bool = False, problem=None) -> dict:
    """Run :func:`bridge_checks` on a run directory; write ``bridge.json`` and ``bridge.nc`` atomically.

    ``bridge.nc`` is ArviZ InferenceData with one group ``bridge`` (``arviz.from_netcdf(path).bridge`` or
    ``xarray.open_dataset(path, group="bridge")``). Ψ is that of the field µ_K saved with the run
    (:func:`bolt.io.load_field`); a run saved without it (an older bolt) falls back to the field of its
    draws and says so (:data:`NO_SAVED_FIELD` in ``settings["field_note"]``, the energy identity's note
    and on stderr).
    """
    import sys

    from bolt.io import load_field, load_results, save_results, write_json

    run_dir = Path(run_dir)
    pb, P, w, summary, method = load_run_measure(run_dir)
    problem = pb if problem is None else problem
    fld = load_field(load_results(run_dir / "results.nc"), run_dir / "results.nc", problem)
    if fld is None:
        print(f"bolt: warning: {run_dir}: {NO_SAVED_FIELD}", file=sys.stderr)
    seed = int(summary.get("seed", 0)) if seed is None else int(seed)
    out, ds = bridge_checks(jax.random.fold_in(jax.random.PRNGKey(seed), 13), problem, P, w, summary, n=particles,
                            steps=steps, drift=drift, inner=inner, grid=method == "grid",
                            progress_bar=False if quiet else None, field=fld)
    out["settings"]["seed"] = seed
    if fld is None:
        out["settings"]["field_note"] = NO_SAVED_FIELD
        for v in out["verdicts"]:
            if v["name"] == "control_energy_identity":
                v["note"] = "; ".join(x for x in (v["note"], NO_SAVED_FIELD) if x)
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a non-standard group name is intended
        idata = az.InferenceData(bridge=ds)
    save_results(run_dir / "bridge.nc", idata)  # atomically
    from bolt._faults import fault_point

    fault_point("bridge:nc")  # between the pair: the manifest then shows two sessions (a mixed pair)
    write_json(run_dir / "bridge.json", out)
    return out
