"""``bolt dynamics RUN_DIR``: SGD and the greedy McKean–Vlasov dynamics against the optimal flow µ*_t.

:func:`dynamics_checks` runs online SGD on width-N networks (:func:`bolt.dynamics.sgd.run_sgd`), the
greedy McKean–Vlasov dynamics (:func:`bolt.dynamics.sgd.run_greedy`) and the reference flow ``R(µ*_t)``
from the path measure of a solved µ* (:func:`bolt.dynamics.sgd.reference_flow`), and returns the
JSON-ready results (documented key by key in ``docs/dynamics.md``) and an ``xarray.Dataset``;
:func:`evaluate_run` reads a run directory and its ``[dynamics]`` settings and writes ``dynamics.json``
and ``dynamics.nc`` atomically.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from bolt.errors import BoltError
from bolt.verdicts import verdict

__all__ = ["dynamics_checks", "evaluate_run", "deviation_stats", "RECORDS", "REFERENCE_SAMPLES", "GREEDY_STEPS"]

#: recording intervals of R_N along the run (R_N at 0, every ⌈n/RECORDS⌉ steps, and n)
RECORDS = 50
#: bridge paths for the reference flow R(µ*_t)
REFERENCE_SAMPLES = 4000
#: cap on the Euler–Maruyama steps of the greedy dynamics (its drift is smooth; cost O(N²) per step)
GREEDY_STEPS = 200


def deviation_stats(risk, reference, reference_se, mask=None) -> tuple[float, float, np.ndarray]:
    """``max_k |risk[r, k] − reference[k]|`` per repetition r, its mean and standard error.

    The SE combines the spread over repetitions (``sd/√R``) with the reference flow's Monte Carlo error at
    the time of the largest mean deviation (the reference is shared by all repetitions, so its error does
    not average out). ``mask`` selects the times compared.

    Returns:
      ``(mean, se, per-repetition maxima (R,))``; the SE is NaN with one repetition.
    """
    risk = np.atleast_2d(np.asarray(risk, np.float64))
    ref, ref_se = np.asarray(reference, np.float64), np.asarray(reference_se, np.float64)
    if mask is not None:
        risk, ref, ref_se = risk[:, mask], ref[mask], ref_se[mask]
    gap = np.abs(risk - ref[None, :])
    per = gap.max(axis=1)
    spread = per.std(ddof=1) / np.sqrt(len(per)) if len(per) > 1 else np.nan
    k = int(np.argmax(gap.mean(axis=0)))
    return float(per.mean()), float(np.hypot(spread, ref_se[k])), per


def dynamics_checks(key, problem, particles, weights, summary: dict, settings: dict, *, grid: bool = False,
                    records: int = RECORDS, reference_samples: int = REFERENCE_SAMPLES,
                    greedy_steps: int | None = None, progress_bar: bool | None = None) -> tuple[dict, object]:
    """SGD, greedy McKean–Vlasov and the reference flow for a solved µ*; returns ``(dynamics_json, Dataset)``.

    Args:
      key: PRNG key.
      problem: the problem (β, τ, σ, π, f).
      particles, weights: µ* as a weighted particle set.
      summary: the run's summary (``free_energy``, ``free_energy_se``) for β·F(µ*).
      settings: a checked ``[dynamics]`` table (:func:`bolt.config.check_dynamics`): ``kind``, ``particles``,
        ``steps``, ``step_size`` (η, resolved), ``minibatch``, ``repetitions``, ``seed``, ``allow_any_horizon``.
      grid: µ* is a quadrature grid (its draws are spread over the cells for the W2 check).
      records: recording intervals of ``R_N`` (see :func:`bolt.dynamics.sgd.record_steps`).
      reference_samples: bridge paths for ``R(µ*_t)``.
      greedy_steps: Euler–Maruyama steps of the greedy dynamics (default ``min(steps, GREEDY_STEPS)``).
      progress_bar: ``None``: when stderr is a terminal.
    """
    import xarray as xr

    from bolt.dynamics.bridge import PRUNE, _mu_sampler, _null_w2, _w2
    from bolt.dynamics.costs import cost_J
    from bolt.dynamics.sgd import greedy_cost, record_steps, reference_flow, run_greedy, run_sgd

    s = dict(settings)
    kind, N, n, eta = s["kind"], int(s["particles"]), int(s["steps"]), float(s["step_size"])
    reps = int(s["repetitions"])
    if int(reference_samples) < 10:
        raise BoltError(f"reference_samples: need at least 10 bridge paths, got {reference_samples}")
    g_steps = min(n, GREEDY_STEPS) if greedy_steps is None else int(greedy_steps)
    if g_steps < 1:
        raise BoltError(f"greedy_steps: must be >= 1, got {g_steps}")
    P = np.asarray(particles, np.float64)
    w = np.asarray(weights, np.float64)
    keep = w > PRUNE * w.max()
    Pk, wk = P[keep], w[keep] / w[keep].sum()
    beta, tau, d = problem.beta, problem.tau, problem.d
    keys = jax.random.split(key, 6)
    ks, _ = record_steps(n, records)
    times = ks * eta
    in_flow = times <= 1.0 + 1e-12  # the greedy dynamics and µ*_t live on [0, 1]
    ref, ref_se, ref_how = reference_flow(keys[0], problem, Pk, wk, times, int(reference_samples), exact=grid,
                                          ess=summary.get("ess"))
    beta_f = beta * float(summary["free_energy"])
    beta_f_se = beta * float(summary.get("free_energy_se") or 0.0)
    out = {"settings": {**s, "records": len(ks), "greedy_steps": g_steps if kind != "sgd" else None,
                        "reference_samples": int(reference_samples), "reference_estimator": ref_how,
                        "horizon": n * eta, "beta": beta, "tau": tau,
                        "mu_star_support": int(keep.sum())},
           "reference_risk_start": float(ref[0]), "reference_risk_start_se": float(ref_se[0]),
           "reference_risk_end": float(ref[in_flow][-1]), "reference_risk_end_se": float(ref_se[in_flow][-1]),
           "beta_F": beta_f, "beta_F_se": beta_f_se}
    data = {"reference_risk": (("record",), ref), "reference_risk_se": (("record",), ref_se)}
    coords = {"record": np.arange(len(ks)), "step": ("record", ks), "time": ("record", times)}
    nan_keys = ("deviation", "deviation_se", "deviation_by_repetition", "deviation_quantiles", "sgd_risk_start",
                "frozen_deviation", "frozen_deviation_se", "sgd_risk_end",
                "sgd_risk_end_se", "greedy_deviation", "greedy_deviation_se", "greedy_risk_end", "greedy_risk_end_se",
                "greedy_J", "greedy_J_se", "greedy_control_energy", "greedy_control_energy_se",
                "greedy_endpoint_risk", "greedy_endpoint_risk_se", "greedy_w2_squared", "greedy_w2_noise",
                "greedy_w2_noise_sd", "greedy_w2_estimator", "prior_w2_squared")
    out.update({k: None for k in nan_keys})
    verdicts = []

    if kind in ("sgd", "both"):
        sgd = run_sgd(keys[1], problem, N, n, eta=eta, minibatch=int(s["minibatch"]), repetitions=reps,
                      records=records, progress_bar=progress_bar)
        dev, dev_se, per = deviation_stats(sgd.risk, ref, ref_se)
        frozen = np.repeat(sgd.risk[:, :1], len(ks), axis=1)
        fdev, fdev_se, fper = deviation_stats(frozen, ref, ref_se)
        end = sgd.risk[:, -1]
        out.update(deviation=dev, deviation_se=dev_se, deviation_by_repetition=per,
                   deviation_quantiles={"min": float(per.min()), "median": float(np.median(per)),
                                        "max": float(per.max())},
                   frozen_deviation=fdev, frozen_deviation_se=fdev_se,
                   sgd_risk_start=float(sgd.risk[:, 0].mean()), sgd_risk_end=float(end.mean()),
                   sgd_risk_end_se=float(end.std(ddof=1) / np.sqrt(reps)) if reps > 1 else None)
        data.update(sgd_risk=(("repetition", "record"), sgd.risk),
                    sgd_loss=(("repetition", "sgd_step"), sgd.loss))
        coords.update(repetition=np.arange(reps), sgd_step=np.arange(n))

    if kind in ("greedy", "both"):
        g = run_greedy(keys[2], problem, N, g_steps, repetitions=reps, save_times=np.minimum(times, 1.0),
                       progress_bar=progress_bar)
        # the greedy run saved at the unique record times ≤ 1; map them back onto the records
        idx = np.searchsorted(g.times, np.minimum(times, 1.0))
        g_risk = np.where(in_flow[None, :], g.risk[:, idx], np.nan)
        gdev, gdev_se, _ = deviation_stats(g_risk, ref, ref_se, mask=in_flow)
        costs = greedy_cost(problem, g) if reps > 1 else cost_J(problem, g.sde)
        end = g.sde.endpoint
        draw = _mu_sampler(P, w, grid, float(np.min(np.diff(np.unique(P[:, 0])))) if grid and len(P) > 1 else 0.0)
        m = min(len(end), 2000)
        est = _w2(end[:m], draw(keys[3], m))
        noise, noise_sd = _null_w2(keys[4], draw, m, 4)
        prior = np.sqrt(tau) * np.asarray(jax.random.normal(keys[5], (m, d)))
        ge = g.risk[:, -1]
        out.update(greedy_deviation=gdev, greedy_deviation_se=gdev_se,
                   greedy_risk_end=float(ge.mean()),
                   greedy_risk_end_se=float(ge.std(ddof=1) / np.sqrt(reps)) if reps > 1 else None,
                   greedy_J=costs["J"], greedy_J_se=costs["J_se"], greedy_control_energy=costs["control_energy"],
                   greedy_control_energy_se=costs["control_energy_se"], greedy_endpoint_risk=costs["endpoint_risk"],
                   greedy_endpoint_risk_se=costs["endpoint_risk_se"], greedy_w2_squared=est.w2_squared,
                   greedy_w2_noise=noise, greedy_w2_noise_sd=noise_sd, greedy_w2_estimator=est.estimator,
                   prior_w2_squared=_w2(prior, draw(jax.random.fold_in(keys[3], 1), m)).w2_squared)
        verdicts.append(verdict("greedy_J_ge_beta_F", beta_f, costs["J"], beta_f_se, costs["J_se"],
                                estimator=f"greedy SDE, {reps} x {N} interacting paths, {g_steps} steps; energy + "
                                          "(beta/2) U-statistic risk over endpoint pairs from different groups",
                                statement="beta F(mu*) = inf_u J(u) <= J(greedy)",
                                source="MATH.md §4 (optimal control; greedy approximations)"))
        data.update(greedy_risk=(("greedy_repetition", "record"), g_risk),
                    greedy_energy=(("greedy_path",), np.asarray(g.sde.energy)))
        coords.update(greedy_repetition=np.arange(reps), greedy_path=np.arange(len(g.sde.energy)))
    out["verdicts"] = [v.as_dict() for v in verdicts]
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(kind=kind, beta=beta, tau=tau, step_size=eta, particles=N,
                    description="bolt dynamics: R_N(W_k) of online SGD (repetition x record), R_N of the greedy "
                                "McKean-Vlasov particles, and the reference flow R(mu*_t) with its MC error")
    return out, ds


def _write_nc(run_dir: Path, ds) -> None:
    """``dynamics.nc`` atomically: ArviZ InferenceData with one group ``dynamics``."""
    import warnings

    import arviz as az

    from bolt.io import save_results

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a non-standard group name is intended
        idata = az.InferenceData(dynamics=ds)
    save_results(run_dir / "dynamics.nc", idata)  # atomically


def evaluate_run(run_dir, *, overrides: dict | None = None, records: int = RECORDS,
                 reference_samples: int = REFERENCE_SAMPLES, greedy_steps: int | None = None,
                 quiet: bool = False, problem=None) -> dict:
    """Run :func:`dynamics_checks` on a run directory with its ``[dynamics]`` settings (``overrides`` — e.g.
    from the command line — replace single keys; ``None`` values are ignored); write ``dynamics.json`` and
    ``dynamics.nc`` atomically.

    ``dynamics.nc`` is ArviZ InferenceData with one group ``dynamics`` (``arviz.from_netcdf(path).dynamics``
    or ``xarray.open_dataset(path, group="dynamics")``).
    """
    from bolt.config import check_dynamics, load_config
    from bolt.dynamics.bridge import load_run_measure
    from bolt.errors import ConfigError
    from bolt.io import write_json

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BoltError(f"dynamics: no run directory at {run_dir}")
    cfg = load_config(run_dir / "config.toml") if (run_dir / "config.toml").is_file() else None
    if cfg is None:
        raise BoltError(f"dynamics: {run_dir} has no config.toml (not a bolt run directory)")
    dyn = dict(cfg["dynamics"])
    for k, v in (overrides or {}).items():
        if k not in dyn:
            raise ConfigError(f"dynamics.{k}: unknown key")
        if v is not None:
            dyn[k] = v
    settings = check_dynamics(dyn)  # before any work: bad settings touch nothing
    pb, P, w, summary, method = load_run_measure(run_dir, "dynamics")
    problem = pb if problem is None else problem
    out, ds = dynamics_checks(jax.random.fold_in(jax.random.PRNGKey(int(settings["seed"])), 17), problem, P, w,
                              summary, settings, grid=method == "grid", records=records,
                              reference_samples=reference_samples, greedy_steps=greedy_steps,
                              progress_bar=False if quiet else None)
    _write_nc(run_dir, ds)
    from bolt._faults import fault_point

    fault_point("dynamics:nc")  # between the pair: the manifest then shows two sessions (a mixed pair)
    write_json(run_dir / "dynamics.json", out)
    return out

