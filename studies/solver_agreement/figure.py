"""Solver agreement figure and table from a ``bolt sweep studies/solver_agreement/sweep.toml`` run.

For each d (the sweep's ``zip`` dimension) and each quantity (F, KL, W2² to γ_τ), every solver and
seed is drawn as its difference from the reference ± its own standard error: in d = 1 the grid
solver's exact value (solved here, 801 points), in d ≥ 3 the inverse-variance mean of the
picard-nuts seeds (± its standard error, the grey band). Prints the table of z-scores against the
reference and the point wall times.

Usage: python studies/solver_agreement/figure.py RUNS/solvers/sweep.nc --out studies/solver_agreement/agreement.png
"""

from __future__ import annotations

import argparse

import numpy as np

QUANTITIES = (("free_energy", "F"), ("kl", "KL"), ("w2_squared_to_prior", "W2²(µ*, γ_τ)"))


def grid_reference(ds, z):
    """F, KL, W2² of the d = 1 problem of zip index ``z`` by the grid solver (exact; SE 0)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from bolt.commands import solver_settings
    from bolt.config import resolve_config
    from bolt.estimators.summary import summarize
    from bolt.solve import solve

    p = ds.isel(solver_method=0, seed=0, zip=z)
    raw = {"problem": {"dim": 1, "target": {"kind": "teacher", "weights": [[1.5]], "coefficients": [1.0]}},
           "regularization": {"beta": float(p.config_regularization_beta),
                              "tau": float(p.config_regularization_tau)},
           "solver": {"method": "grid", "grid_points": 801}}
    cfg = resolve_config(raw)
    from bolt.config import problem_from_config

    pb = problem_from_config(cfg)
    s = summarize(jax.random.PRNGKey(0), pb, solve(pb, "grid", **solver_settings(cfg)))
    return {q: (s[q], 0.0) for q, _ in QUANTITIES}


def pooled(ds, z, method="picard-nuts"):
    out = {}
    for q, _ in QUANTITIES:
        v = ds[q].sel(solver_method=method).isel(zip=z).values.astype(float)
        se = ds[q + "_se"].sel(solver_method=method).isel(zip=z).values.astype(float)
        w = 1.0 / se**2
        out[q] = (float(np.sum(w * v) / np.sum(w)), float(np.sqrt(1.0 / np.sum(w))))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_nc")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    ds = xr.open_dataset(args.sweep_nc).load()
    methods = [str(m) for m in ds.solver_method.values]
    nz = ds.sizes["zip"]
    fig, axes = plt.subplots(len(QUANTITIES), nz, figsize=(4.2 * nz, 2.6 * len(QUANTITIES)), squeeze=False)
    for z in range(nz):
        d = int(ds.config_problem_dim.isel(solver_method=0, seed=0, zip=z))
        ref = grid_reference(ds, z) if d <= 2 else pooled(ds, z)
        src = "grid (exact)" if d <= 2 else "picard-nuts, seeds pooled"
        print(f"d = {d}: reference {src}: " + ", ".join(f"{lab} {ref[q][0]:.5g} ± {ref[q][1]:.2g}"
                                                          for q, lab in QUANTITIES))
        for row, (q, lab) in enumerate(QUANTITIES):
            ax = axes[row][z]
            r, r_se = ref[q]
            ax.axhspan(-2 * r_se, 2 * r_se, color="0.85", lw=0)
            ax.axhline(0.0, color="k", lw=0.8)
            for i, m in enumerate(methods):
                v = ds[q].sel(solver_method=m).isel(zip=z).values.astype(float)
                se = ds[q + "_se"].sel(solver_method=m).isel(zip=z).values.astype(float)
                x = i + np.linspace(-0.15, 0.15, len(v))
                ax.errorbar(x, v - r, yerr=2 * se, fmt="o", ms=4, color=f"C{i}", capsize=2)
            ax.set_xticks(range(len(methods)), methods if row == len(QUANTITIES) - 1 else [""] * len(methods))
            ax.set_title(f"{lab} − reference, d = {d}", fontsize=9)
        for m in methods:
            sub = ds.sel(solver_method=m).isel(zip=z)
            zs = {lab: (sub[q].values.astype(float) - ref[q][0]) / np.hypot(sub[q + "_se"].values.astype(float),
                                                                            ref[q][1])
                  for q, lab in QUANTITIES}
            conv = sub.converged.values.astype(bool)
            print(f"  {m:12s} z(F) {np.round(zs['F'], 1)}  z(KL) {np.round(zs['KL'], 1)}  "
                  f"z(W2²) {np.round(zs['W2²(µ*, γ_τ)'], 1)}  iterations {sub.iterations.values.astype(int)} "
                  f"converged {conv.tolist()}  wall {np.round(sub.wall_s.values.astype(float)).astype(int)} s")
    fig.suptitle("solver − reference (bars: ± 2 SE of the solver; band: ± 2 SE of the reference)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
