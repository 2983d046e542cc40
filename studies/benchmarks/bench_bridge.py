"""The path measure: (a) Sinkhorn at ε = τ, bolt vs POT ``sinkhorn_log``; (b) one SDE step against N.

(a) Two Gaussian samples of n points in d = 3 and 10 (N(0, τI) and N(m, τI/2), τ = 0.5), entropic OT
with cost |x − y|²/2 and ε = τ (POT: cost matrix |x − y|², reg = 2τ), both to the marginal tolerance
1e-6 (bolt: L1 of the second marginal; POT: its default L2 error of the same marginal). Each
(solver, n, d) runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own;
time includes compilation for bolt (first call) and is also given warm.

(b) One Euler–Maruyama step of the controlled SDE (jitted, after compilation) for N paths on the
default d = 3 problem with a 2000-particle µ* (draws of γ_τ — the cost does not depend on µ*
being the fixed point): potential drift (M = 32 importance draws, two halves), samples drift
(kernel regression over the 2000 particles), greedy drift.

Usage: python studies/benchmarks/bench_bridge.py [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

TAU = 0.5


def _data(n, d, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    m = np.zeros(d)
    m[0] = 1.0
    return np.sqrt(TAU) * rng.normal(size=(n, d)), m + np.sqrt(TAU / 2) * rng.normal(size=(n, d))


def one_sinkhorn(solver, n, d):
    """Run one Sinkhorn in this process; print JSON with time, peak RSS, cost."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    x, y = _data(n, d)
    out = {"solver": solver, "n": n, "d": d}
    if solver == "pot":
        import ot

        t0 = time.perf_counter()
        M = ot.dist(x, y)
        a = np.full(n, 1.0 / n)
        P, log = ot.bregman.sinkhorn_log(a, a, M, reg=2 * TAU, stopThr=1e-6, numItermax=10000, log=True)
        out["time_s"] = time.perf_counter() - t0
        out["iterations"] = int(log["niter"])
        out["cost"] = float(np.sum(P * M) / 2 + TAU * np.sum(P * np.log(np.maximum(P, 1e-300) / (a[:, None] * a))))
    else:
        from bolt.dynamics.schrodinger import schrodinger_bridge

        t0 = time.perf_counter()
        sb = schrodinger_bridge(x, y, TAU, tolerance=1e-6)
        out["time_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        sb = schrodinger_bridge(x, y, TAU, tolerance=1e-6)
        out["warm_s"] = time.perf_counter() - t1
        out["iterations"] = sb.iterations
        out["cost"] = sb.cost
        out["online"] = n * n > (1 << 22)
        out["converged"] = sb.converged
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def sde_steps(sizes):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from bolt.config import DEFAULT_CONFIG, problem_from_config
    from bolt.dynamics.follmer import problem_potential
    from bolt.dynamics.sde import build_step, function_drift, init, potential_drift, samples_drift

    pb = problem_from_config(DEFAULT_CONFIG)
    P = jnp.sqrt(pb.tau) * jax.random.normal(jax.random.PRNGKey(0), (2000, pb.d))
    pot = problem_potential(pb, P)
    drifts = {"potential (M = 32)": potential_drift(pot, pb.beta, pb.tau, inner=32),
              "samples": samples_drift(P, None, pb.tau),
              "greedy": function_drift(lambda W, t: -pb.beta * pot.grad_psi(W))}
    rows = []
    for name, dr in drifts.items():
        step = jax.jit(build_step(dr, pb.tau))
        for n in sizes:
            st = init(n, pb.d)
            st = st._replace(particles=0.3 * jax.random.normal(jax.random.PRNGKey(1), (n, pb.d)))
            t0 = time.perf_counter()
            jax.block_until_ready(step(jax.random.PRNGKey(2), st, 0.5, 0.01))
            compile_s = time.perf_counter() - t0
            reps = 2
            t0 = time.perf_counter()
            for r in range(reps):
                jax.block_until_ready(step(jax.random.PRNGKey(3 + r), st, 0.5, 0.01))
            rows.append((name, n, (time.perf_counter() - t0) / reps, compile_s))
            print(f"  SDE step  {name:<20} N = {n:>6}: {rows[-1][2] * 1e3:9.1f} ms  (first call {compile_s:.2f} s)",
                  flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes")
    ap.add_argument("--one", nargs=3, metavar=("SOLVER", "N", "D"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        one_sinkhorn(args.one[0], int(args.one[1]), int(args.one[2]))
        return
    import jax

    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
          f"jax {jax.__version__} ({jax.default_backend()}), float64")
    sizes = [(200, 3)] if args.smoke else [(1000, 3), (4000, 3), (1000, 10), (4000, 10)]
    online = [] if args.smoke else [(16000, 3)]
    print("(a) Sinkhorn, eps = tau = 0.5, tolerance 1e-6")
    for n, d in sizes + online:
        res = {}
        for solver in ("bolt", "pot"):
            if solver == "pot" and (n, d) in online:
                continue  # the 16000² cost matrix and kernel alone are 4 GiB
            r = subprocess.run([sys.executable, __file__, "--one", solver, str(n), str(d)], capture_output=True,
                               text=True, timeout=1200)
            if r.returncode != 0:
                print(f"  {solver} n={n} d={d} failed: {r.stderr.strip().splitlines()[-1]}")
                continue
            res[solver] = json.loads(r.stdout.strip().splitlines()[-1])
        for solver, o in res.items():
            extra = f" warm {o['warm_s']:.2f} s, online={o['online']}" if solver == "bolt" else ""
            print(f"  {solver:<5} n = {n:>6} d = {d:>2}: {o['time_s']:7.2f} s{extra}, {o['iterations']} it, "
                  f"peak RSS {o['peak_rss_mib']:.0f} MiB, cost {o['cost']:.6f}", flush=True)
        if len(res) == 2:
            print(f"  ratio POT/bolt time (bolt warm): {res['pot']['time_s'] / res['bolt']['warm_s']:.2f}, "
                  f"cost difference {abs(res['pot']['cost'] - res['bolt']['cost']):.2e}")
    print("(b) one SDE step, default d = 3 problem, mu* = 2000 particles")
    sde_steps([500] if args.smoke else [1000, 4000])


if __name__ == "__main__":
    main()
