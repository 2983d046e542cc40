"""Lazy training as transport: how far do Gaussian weights move to become µ*?

For d = 1 (σ = erf, teacher erf(1.5x)), µ* is solved exactly on a grid and T = F_µ*⁻¹ ∘ F_γ is the
exact monotone map. For W_1..W_N iid γ_τ we measure (MATH.md §3, corollary)
  max_i |T(W_i) − W_i|, mean_i |T(W_i) − W_i|, ‖f − f̂_N(·; T(W))‖², ‖f̂_N(·; T(W)) − f̂_N(·; W)‖²
as functions of N, β and τ, each as a mean over replicates with its standard error.

Usage: python studies/lazy_training/run.py [--smoke] [--out DIR]
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
from bolt.solve import solve  # noqa: E402
from bolt.transport import lazy_training, monotone_map_1d  # noqa: E402


def measure(beta, tau, ns, reps, rng):
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=beta, tau=tau)
    res = solve(pb, "grid", grid_points=401)
    return measure_map(pb, res.particles, res.weights, ns, reps, rng)


def measure_map(pb, P, w, ns, reps, rng) -> list[dict]:
    """For each N in ``ns``: ``reps`` sets of N prior draws pushed by the exact monotone map to the
    weighted µ* ``(P, w)``; the lazy-training quantities' mean ± SE over the sets."""
    beta, tau = pb.beta, pb.tau
    T = monotone_map_1d(tau, P[:, 0], w)
    risk_star = float(pb.risk(P, w))
    rows = []
    for n in ns:
        vals = []
        for _ in range(reps):
            W = np.sqrt(tau) * rng.normal(size=(n, 1))
            vals.append(lazy_training(pb, W, T(W[:, 0])[:, None]))
        row = {"beta": beta, "tau": tau, "N": n, "risk_mu_star": risk_star}
        for k in vals[0]:
            v = np.array([x[k] for x in vals])
            row[k], row[k + "_se"] = float(v.mean()), float(v.std(ddof=1) / np.sqrt(reps))
        rows.append(row)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Mean displacement and function change against β at the largest N, one line per τ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    big = max(r["N"] for r in rows)
    for tau in sorted({r["tau"] for r in rows}):
        sel = [r for r in rows if r["tau"] == tau and r["N"] == big]
        axes[0].errorbar([r["beta"] for r in sel], [r["mean_displacement"] for r in sel],
                         [r["mean_displacement_se"] for r in sel], marker="o", label=f"tau={tau}")
        axes[1].errorbar([r["beta"] for r in sel], [r["function_change_sq"] for r in sel],
                         [r["function_change_sq_se"] for r in sel], marker="o", label=f"tau={tau}")
    for ax, t in zip(axes, ("mean |T(W_i) - W_i|", "||f_N(T(W)) - f_N(W)||^2")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        betas = sorted({r["beta"] for r in rows})
        ax.minorticks_off()
        ax.set_xticks(betas, [f"{b:g}" for b in betas])
        ax.set_xlabel("beta")
        ax.set_title(f"{t}, N = {big}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny sweep (run by the test suite)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = ap.parse_args(argv)
    t0 = time.time()
    rng = np.random.default_rng(0)
    if args.smoke:
        betas, taus, ns, reps = [0.5, 1.0], [0.5], [50, 200], 4
    else:
        betas, taus, ns, reps = [0.125, 0.25, 0.5, 1.0, 2.0], [0.25, 0.5, 1.0], [100, 1000, 4000], 20
    rows = []
    for tau in taus:
        for beta in betas:
            rows += measure(beta, tau, ns, reps, rng)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"{'tau':>5} {'beta':>6} {'N':>6} | {'max|T(W)-W|':>16} | {'mean|T(W)-W|':>16} | "
          f"{'||f-f_N(T(W))||^2':>20} | {'R(mu*)':>8} | {'||f_N(TW)-f_N(W)||^2':>20}")
    for r in rows:
        print(f"{r['tau']:>5} {r['beta']:>6} {r['N']:>6} | "
              f"{r['max_displacement']:.4f} ± {r['max_displacement_se']:.4f} |"
              f" {r['mean_displacement']:.4f} ± {r['mean_displacement_se']:.4f} | "
              f"{r['risk_transported']:.4f} ± {r['risk_transported_se']:.4f} | {r['risk_mu_star']:.4f} | "
              f"{r['function_change_sq']:.4f} ± {r['function_change_sq_se']:.4f}")
    plot(rows, out / "lazy_training.png")
    print(f"runtime {time.time() - t0:.1f} s; results in {out}")
    return rows


if __name__ == "__main__":
    main()
