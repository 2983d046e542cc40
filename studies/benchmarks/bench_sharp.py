"""Sharp regimes (issue 11, target 2): every solver on d = 1 at (β, τ) = (4, 0.25) and (8, 0.125), against the grid.

Problem: erf units, Gaussian inputs (arcsine route, closed forms), teacher f(x) = erf(1.5 x), d = 1 —
the d = 1 reference problem of the tests (tests/test_solvers.py) at larger β/τ (16 and 64 instead of 3).
The grid (quadrature, exact to 1e-10) is the reference. For each stochastic solver it prints the wall
time of the solve (in a fresh process, so compilation included, no persistent cache) and of the
summary, and F, KL and W2²(µ, γ_τ) with their standard errors and z = (solver − grid)/SE.

Solver settings (SETTINGS below; the same as studies/configs/sharp-*.toml): bolt's defaults except
  picard-mala: as the default config (40 chains × 5 inner steps, 2000 draws, 5 final blocks,
               field herded to 1000 points), max_iterations = 12;
  picard-nuts: 4 chains, 1 step per draw, warmup 300, final_blocks = 2, max_iterations = 12;
  mfld:        N = 2000, h = 0.01, T = 8 (20 blocks).
Each (regime, solver) runs in its own subprocess with a time limit (--limit, default 180 s), so a
solver that does not finish is reported as such instead of stalling the benchmark.

Usage: python studies/benchmarks/bench_sharp.py [--smoke] [--limit SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

REGIMES = {"b4": (4.0, 0.25), "b8": (8.0, 0.125)}
SOLVERS = ("grid", "picard-mala", "picard-nuts", "mfld")
COMMON = dict(progress_bar=False)
SETTINGS = {
    "grid": dict(),
    "picard-mala": dict(particles=2000, chains=40, inner_steps=5, warmup=500, final_blocks=5, field_size=1000,
                        max_iterations=12),
    "picard-nuts": dict(particles=2000, chains=4, inner_steps=1, warmup=300, final_blocks=2, field_size=1000,
                        max_iterations=12),
    "mfld": dict(particles=2000, step_size=0.01, horizon=8.0, blocks=20),
}
SMOKE = {
    "grid": dict(grid_points=201),
    "picard-mala": dict(particles=400, chains=8, warmup=100, max_iterations=3, final_blocks=1, field_size=200),
    "picard-nuts": dict(particles=200, chains=2, warmup=50, max_iterations=2, final_blocks=1, field_size=100),
    "mfld": dict(particles=200, step_size=0.02, horizon=1.0, blocks=4),
}
KEYS = ("free_energy", "kl", "w2_squared_to_prior")


def one(regime: str, method: str, smoke: bool) -> dict:
    """Solve and summarize one (regime, solver) in this process; returns a JSON-able dict."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import bolt
    from bolt.estimators.summary import summarize
    from bolt.solve import solve

    beta, tau = REGIMES[regime]
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=beta, tau=tau)
    kw = dict(SMOKE[method] if smoke else SETTINGS[method])
    if method != "grid":
        kw.update(COMMON)
    t = time.perf_counter()
    res = solve(pb, method, seed=1, **kw)
    t_solve = time.perf_counter() - t
    t = time.perf_counter()
    s = summarize(jax.random.PRNGKey(2), pb, res)
    t_sum = time.perf_counter() - t
    out = {"solve_s": t_solve, "summary_s": t_sum, "converged": bool(res.converged),
           "iterations": int(res.iterations), "draws": len(res.particles), "ess": float(s["ess"])}
    for k in KEYS:
        out[k], out[k + "_se"] = float(s[k]), float(s.get(k + "_se", 0.0))
    return out


def machine() -> str:
    import jax
    import numpyro

    return (f"{platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | "
            f"jax {jax.__version__} ({jax.default_backend()}) | numpyro {numpyro.__version__} | float64")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny settings (a dry run)")
    ap.add_argument("--limit", type=float, default=180.0, help="seconds allowed per (regime, solver)")
    ap.add_argument("--only", nargs=2, metavar=("REGIME", "SOLVER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.only:
        print("RESULT " + json.dumps(one(*args.only, args.smoke)))
        return
    print("machine:", machine(), flush=True)
    for regime, (beta, tau) in REGIMES.items():
        print(f"\nd = 1, erf, teacher erf(1.5 x), beta = {beta:g}, tau = {tau:g} (beta/tau = {beta / tau:g})",
              flush=True)
        ref = None
        for method in SOLVERS:
            cmd = [sys.executable, __file__, "--only", regime, method] + (["--smoke"] if args.smoke else [])
            t = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.limit)
            except subprocess.TimeoutExpired:
                print(f"  {method:12s} did NOT finish within {args.limit:.0f} s", flush=True)
                continue
            wall = time.perf_counter() - t
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                print(f"  {method:12s} failed: {proc.stderr.strip()[-400:]}", flush=True)
                continue
            r = json.loads(lines[0][len("RESULT "):])
            if method == "grid":
                ref = r
                print(f"  {'grid':12s} solve {r['solve_s']:6.1f} s (process {wall:5.1f} s) | "
                      + " | ".join(f"{k} {r[k]:.5f}" for k in KEYS), flush=True)
                continue
            parts = []
            for k in KEYS:
                se = r[k + "_se"]
                z = (r[k] - ref[k]) / se if ref is not None and se > 0 else float("nan")
                parts.append(f"{k} {r[k]:.5f} ± {se:.5f} (z {z:+.2f})")
            print(f"  {method:12s} solve {r['solve_s']:6.1f} s + summary {r['summary_s']:4.1f} s "
                  f"(process {wall:5.1f} s), "
                  f"{r['iterations']} it., converged {r['converged']}, {r['draws']} draws (ESS {r['ess']:.0f}) | "
                  + " | ".join(parts), flush=True)


if __name__ == "__main__":
    main()
