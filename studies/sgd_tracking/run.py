"""Does plain online SGD track the optimal McKean–Vlasov flow µ*_t? (MATH.md §4, "Greedy approximations")

The talk's claim: with τ = ε²/d, β = ε, N ~ 1/ε² and nη = 1, w.h.p.
``max_k |R_N(W_k) − R(µ*_{kη})| = O(ε)`` up to logs. For each ε this script solves µ* exactly (d = 1 grid),
computes the reference flow R(µ*_t) by quadrature of the bridge mixture, runs online SGD (width
N = ⌈c/ε²⌉, ``reps`` independent networks, n steps, η = 1/n), the frozen network (W_k = W_0) and the greedy
McKean–Vlasov dynamics (``bolt.dynamics.tracking.dynamics_checks``, the engine of ``bolt dynamics``), and fits
the log-log slope of each deviation against ε.

Usage: python studies/sgd_tracking/run.py [--smoke] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import bolt  # noqa: E402
from bolt.dynamics.tracking import dynamics_checks  # noqa: E402
from bolt.estimators.summary import summarize  # noqa: E402
from bolt.solve import solve  # noqa: E402
from bolt.sweep.aggregate import loglog_fit  # noqa: E402

TEACHER = ([[1.5]], [1.0])  # f(x) = erf(1.5 x), x ~ N(0, 1); σ = erf; d = 1


def measure(eps: float, c: float, steps: int, reps: int, greedy_steps: int, seed: int, records: int = 50,
            grid_points: int = 0):
    d = 1
    tau, beta = eps * eps / d, eps
    N = int(np.ceil(c / eps**2))
    pb = bolt.make_problem("erf", bolt.Teacher(*TEACHER), beta=beta, tau=tau)
    res = solve(pb, "grid", grid_points=grid_points)
    sm = summarize(jax.random.PRNGKey(seed), pb, res)
    settings = {"kind": "both", "particles": N, "steps": steps, "step_size": 1.0 / steps, "minibatch": 1,
                "repetitions": reps, "seed": seed, "allow_any_horizon": False}
    out, ds = dynamics_checks(jax.random.fold_in(jax.random.PRNGKey(seed), int(round(1e4 * eps))), pb,
                              res.particles, res.weights, sm, settings, grid=True, records=records,
                              greedy_steps=greedy_steps, progress_bar=False)
    row = {"epsilon": eps, "tau": tau, "beta": beta, "N": N, "steps": steps, "repetitions": reps,
           "risk_mu_star": float(sm["risk"]), "grid_converged": bool(res.converged)}
    for k in ("deviation", "deviation_se", "frozen_deviation", "frozen_deviation_se", "greedy_deviation",
              "greedy_deviation_se", "reference_risk_start", "reference_risk_end", "sgd_risk_end", "sgd_risk_end_se",
              "greedy_risk_end", "greedy_J", "greedy_J_se", "beta_F", "greedy_w2_squared", "greedy_w2_noise"):
        row[k] = out[k]
    row["J_verdict"] = out["verdicts"][0]["outcome"]
    traj = {k: np.asarray(ds[v].values).tolist() for k, v in (("time", "time"), ("reference", "reference_risk"),
                                                                ("sgd", "sgd_risk"), ("greedy", "greedy_risk"))}
    return row, traj


def fit(rows, key):
    e = np.array([r["epsilon"] for r in rows])
    y = np.array([r[key] for r in rows])
    fit = loglog_fit(e, y)  # ordinary least squares in log-log, residual SE
    return fit["slope"], fit["slope_se"]


def figure(rows, trajs, fits, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    e = np.array([r["epsilon"] for r in rows])
    for key, lab, col in (("deviation", "SGD", "C0"), ("frozen_deviation", "frozen W_k = W_0", "C2"),
                          ("greedy_deviation", "greedy McKean–Vlasov", "C3")):
        y = np.array([r[key] for r in rows])
        se = np.array([r[key + "_se"] for r in rows])
        s, sse = fits[key]
        ax.errorbar(e, y, yerr=2 * se, fmt="o-", color=col, capsize=2, label=f"{lab}: slope {s:.2f} ± {sse:.2f}")
    ax.plot(e, e * rows[0]["frozen_deviation"] / e[0], "k:", lw=0.8, label="slope 1 (O(ε))")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ε  (τ = ε², β = ε, N = ⌈c/ε²⌉)")
    ax.set_ylabel("max_k |R_N(W_k) − R(µ*_{kη})|  (± 2 SE)")
    ax.legend(fontsize=7)
    ax.set_title("deviation from the optimal flow")
    ax = axes[1]
    # the smallest ε and ε = 4·ε_min (at the largest ε, N = ⌈c/ε²⌉ is so small that the spread of R_N(W_0)
    # over initialisations hides the flow)
    pick = [0, min(4, len(rows) - 1)]
    for j, i in enumerate(pick):
        t = np.array(trajs[i]["time"])
        ref = np.array(trajs[i]["reference"])
        sgd = np.array(trajs[i]["sgd"])
        lo, hi = np.quantile(sgd, [0.05, 0.95], axis=0)
        col = f"C{j}"
        ax.plot(t, ref, color="k", lw=1.2, ls="-" if j == 0 else "--",
                label=f"R(µ*_t), ε = {rows[i]['epsilon']:.3g}")
        ax.fill_between(t, lo, hi, color=col, alpha=0.3, lw=0)
        ax.plot(t, np.median(sgd, 0), color=col, lw=1, label=f"SGD ε = {rows[i]['epsilon']:.3g} (N = {rows[i]['N']})")
        ax.plot(t, np.nanmedian(np.array(trajs[i]["greedy"]), 0), color=col, ls=":", lw=1.2)
    ax.set_xlabel("t = kη")
    ax.set_ylabel("risk")
    ax.set_title("R_N(W_k) (band 5–95 %), greedy (dotted), R(µ*_t) (black)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny sweep (run by the test suite)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    ap.add_argument("--replot", action="store_true", help="redraw the figure from OUT/results.json, trajectories.json")
    args = ap.parse_args(argv)
    if args.replot:
        out = Path(args.out)
        res = json.loads((out / "results.json").read_text())
        fits = {k: (v["slope"], v["se"]) for k, v in res["slopes"].items()}
        figure(res["rows"], json.loads((out / "trajectories.json").read_text()), fits, out / "sgd_tracking.png")
        return
    t0 = time.time()
    if args.smoke:
        eps_list, c, steps, reps, gsteps, records, gp = [0.1, 0.14, 0.2], 1.0, 100, 4, 20, 10, 201
    else:
        eps_list, c, steps, reps, gsteps, records, gp = list(0.05 * 2 ** (np.arange(7) / 2)), 2.0, 1000, 32, 200, 50, 0
    rows, trajs = [], []
    for eps in eps_list:
        row, traj = measure(float(eps), c, steps, reps, gsteps, seed=0, records=records, grid_points=gp)
        rows.append(row)
        trajs.append(traj)
        print(f"eps = {eps:.4f}  N = {row['N']:5d}  deviation = {row['deviation']:.4g} ± {row['deviation_se']:.2g}  "
              f"frozen = {row['frozen_deviation']:.4g}  greedy = {row['greedy_deviation']:.4g}  "
              f"({time.time() - t0:.0f} s)", flush=True)
    fits = {k: fit(rows, k) for k in ("deviation", "frozen_deviation", "greedy_deviation")}
    ratio = [r["deviation"] / r["frozen_deviation"] for r in rows]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = {"c": c, "rows": rows, "slopes": {k: {"slope": s, "se": se} for k, (s, se) in fits.items()},
           "deviation_over_frozen": ratio, "runtime_s": time.time() - t0, "smoke": bool(args.smoke),
           "machine": f"{os.cpu_count()} CPUs, jax {jax.__version__}"}
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "trajectories.json").write_text(json.dumps(trajs) + "\n")
    figure(rows, trajs, fits, out / "sgd_tracking.png")
    for k, (s, se) in fits.items():
        print(f"slope of {k} vs eps: {s:.3f} ± {se:.3f}")
    print(f"deviation / frozen: {np.round(ratio, 3).tolist()}")
    print(f"runtime {time.time() - t0:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
