"""The path measure: (a) Sinkhorn at ε = τ, bolt vs POT ``sinkhorn_log``; (b) one SDE step against N.

(a) n = 10³, 10⁴, 10⁵: two Gaussian samples of n points in d = 3 and 10 (N(0, τI) and N(m, τI/2), τ = 0.5), entropic OT
with cost |x − y|²/2 and ε = τ (POT: cost matrix |x − y|², reg = 2τ), both to the marginal tolerance
1e-6 (bolt: L1 of the second marginal; POT: its default L2 error of the same marginal). Each
(solver, n, d) runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own;
time includes compilation for bolt (first call) and is also given warm (a second call) where that
costs under ~10 s. A size runs only when its projection from the previous size (time ∝ n², POT memory
∝ n²) fits the budgets below; otherwise the script prints the projection and why it was skipped.

(b) One Euler–Maruyama step of the controlled SDE (jitted, after compilation) for N paths on the
default d = 3 problem with a 2000-particle µ* (draws of γ_τ — the cost does not depend on µ*
being the fixed point): potential drift (M = 32 importance draws, two halves), samples drift
(kernel regression over the 2000 particles), greedy drift; N = 10³ … 10⁵, a size skipped (with its
projection) when one step is projected above ``SDE_STEP_BUDGET_S``.

``--large`` runs only the two sizes the budgeted run skips on this machine, with no budget: bolt's
Sinkhorn at n = 10⁵ in d = 10 (POT is still skipped: its n × n matrices would need ~600 GiB) and
the potential-drift step at N = 10⁵ (one step after the compiling call).

Usage: python studies/benchmarks/bench_bridge.py [--smoke | --large]
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
#: (a) skip a Sinkhorn run whose projected time exceeds this (seconds), or POT whose projected peak
#: memory exceeds this fraction of the machine's memory.
SINKHORN_BUDGET_S = 300.0
POT_MEMORY_FRACTION = 0.5
#: the whole run stays under this (seconds); (b) is given ``SDE_RESERVE_S`` of it.
TOTAL_BUDGET_S = 600.0
SDE_RESERVE_S = 60.0
#: (b) skip an SDE-step size whose projected time per step exceeds this (seconds).
SDE_STEP_BUDGET_S = 20.0


def _data(n, d, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    m = np.zeros(d)
    m[0] = 1.0
    return np.sqrt(TAU) * rng.normal(size=(n, d)), m + np.sqrt(TAU / 2) * rng.normal(size=(n, d))


def one_sinkhorn(solver, n, d, warm=True):
    """Run one Sinkhorn in this process; print JSON with time, peak RSS, cost (``warm``: time a second call)."""
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
        out["warm_s"] = None
        if warm:
            t1 = time.perf_counter()
            sb = schrodinger_bridge(x, y, TAU, tolerance=1e-6)
            out["warm_s"] = time.perf_counter() - t1
        out["iterations"] = sb.iterations
        out["cost"] = sb.cost
        out["online"] = n * n > (1 << 22)
        out["converged"] = sb.converged
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def sde_steps(sizes, only=None, reps=2, budget_s=SDE_STEP_BUDGET_S):
    """Time one jitted SDE step per drift and N (mean of ``reps`` after the compiling call); skip a size
    projected (∝ N) above ``budget_s``; ``only`` names the drift to time (default all)."""
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
        if only is not None and not name.startswith(only):
            continue
        step = jax.jit(build_step(dr, pb.tau))
        last = None
        for n in sizes:
            if last is not None and last[1] * n / last[0] > budget_s:
                print(f"  SDE step  {name:<20} N = {n:>6}: skipped, projected {last[1] * n / last[0]:.0f} s per step "
                      f"(linear in N from N = {last[0]}) > budget {budget_s:.0f} s", flush=True)
                continue
            st = init(n, pb.d)
            st = st._replace(particles=0.3 * jax.random.normal(jax.random.PRNGKey(1), (n, pb.d)))
            t0 = time.perf_counter()
            jax.block_until_ready(step(jax.random.PRNGKey(2), st, 0.5, 0.01))
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            for r in range(reps):
                jax.block_until_ready(step(jax.random.PRNGKey(3 + r), st, 0.5, 0.01))
            rows.append((name, n, (time.perf_counter() - t0) / reps, compile_s))
            last = (n, rows[-1][2])
            print(f"  SDE step  {name:<20} N = {n:>6}: {rows[-1][2] * 1e3:9.1f} ms  (first call {compile_s:.2f} s)",
                  flush=True)
    return rows


def _mem_total_mib():
    try:
        with open("/proc/meminfo") as fh:
            return int(fh.readline().split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return float("inf")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes")
    ap.add_argument("--large", action="store_true", help="only the sizes the budgeted run skips, with no budget")
    ap.add_argument("--one", nargs=4, metavar=("SOLVER", "N", "D", "WARM"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        one_sinkhorn(args.one[0], int(args.one[1]), int(args.one[2]), args.one[3] == "1")
        return
    import jax

    t_start = time.perf_counter()
    mem = _mem_total_mib()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {mem / 1024:.0f} GiB, python "
          f"{platform.python_version()}, jax {jax.__version__} ({jax.default_backend()}), float64")
    if args.large:
        print("(a) Sinkhorn, eps = tau = 0.5, tolerance 1e-6, no budget (POT skipped: ~600 GiB of n x n matrices)")
        r = subprocess.run([sys.executable, __file__, "--one", "bolt", "100000", "10", "0"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            print(f"  bolt n=100000 d=10 failed (exit {r.returncode}): {r.stderr.strip()[-300:]}", flush=True)
        else:
            o = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"  bolt  n = 100000 d = 10: {o['time_s']:7.2f} s (cold), online={o['online']}, "
                  f"converged={o['converged']}, {o['iterations']} it, peak RSS {o['peak_rss_mib']:.0f} MiB, "
                  f"cost {o['cost']:.6f}", flush=True)
        print("(b) one SDE step, default d = 3 problem, mu* = 2000 particles, no budget")
        sde_steps([100_000], only="potential", reps=1, budget_s=float("inf"))
        print(f"total wall time {time.perf_counter() - t_start:.0f} s")
        return
    ns = [200] if args.smoke else [1000, 10_000, 100_000]
    dims = [3] if args.smoke else [3, 10]
    print(f"(a) Sinkhorn, eps = tau = {TAU}, tolerance 1e-6 (budget {SINKHORN_BUDGET_S:.0f} s per run, POT memory "
          f"{POT_MEMORY_FRACTION:.0%} of RAM, whole run {TOTAL_BUDGET_S:.0f} s)")
    for d in dims:
        last = {}  # solver -> (n, time_s, peak_rss_mib)
        for n in ns:
            res = {}
            for solver in ("bolt", "pot"):
                if solver in last:
                    n0, t0, m0 = last[solver]
                    t_proj = t0 * (n / n0) ** 2
                    # POT's memory above the interpreter's ~250 MiB is its n × n matrices
                    m_proj = 250 + max(m0 - 250, 0) * (n / n0) ** 2 if solver == "pot" else 0.0
                    left = TOTAL_BUDGET_S - SDE_RESERVE_S - (time.perf_counter() - t_start)
                    if t_proj > min(SINKHORN_BUDGET_S, left) or m_proj > POT_MEMORY_FRACTION * mem:
                        why = (f"projected {t_proj:.0f} s" + (f", {m_proj / 1024:.0f} GiB" if solver == "pot" else "")
                               + f" (∝ n² from n = {n0}); budget {SINKHORN_BUDGET_S:.0f} s per run, "
                               f"{max(left, 0):.0f} s left of the run's {TOTAL_BUDGET_S:.0f} s")
                        print(f"  {solver:<5} n = {n:>6} d = {d:>2}: skipped, {why}", flush=True)
                        continue
                warm = "1" if solver == "bolt" and n * n <= 10**8 else "0"
                r = subprocess.run([sys.executable, __file__, "--one", solver, str(n), str(d), warm],
                                   capture_output=True, text=True, timeout=1200)
                if r.returncode != 0:
                    tail = (r.stderr.strip().splitlines() or ["(no stderr)"])[-1]
                    print(f"  {solver} n={n} d={d} failed (exit {r.returncode}): {tail}", flush=True)
                    continue
                res[solver] = o = json.loads(r.stdout.strip().splitlines()[-1])
                last[solver] = (n, o.get("warm_s") or o["time_s"], o["peak_rss_mib"])
            for solver, o in res.items():
                extra = ""
                if solver == "bolt":
                    warm_s = "not repeated" if o["warm_s"] is None else f"{o['warm_s']:.2f} s"
                    extra = f" warm {warm_s}, online={o['online']}, converged={o['converged']}"
                print(f"  {solver:<5} n = {n:>6} d = {d:>2}: {o['time_s']:7.2f} s{extra}, {o['iterations']} it, "
                      f"peak RSS {o['peak_rss_mib']:.0f} MiB, cost {o['cost']:.6f}", flush=True)
            if len(res) == 2:
                bt = res["bolt"]["warm_s"] or res["bolt"]["time_s"]
                print(f"  ratio POT/bolt time (bolt warm): {res['pot']['time_s'] / bt:.2f}, "
                      f"cost difference {abs(res['pot']['cost'] - res['bolt']['cost']):.2e}", flush=True)
    print("(b) one SDE step, default d = 3 problem, mu* = 2000 particles")
    sde_steps([500] if args.smoke else [1000, 10_000, 100_000])
    print(f"total wall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
