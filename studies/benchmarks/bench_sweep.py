"""Benchmark of ``bolt sweep``: a 16-point sweep in a plain loop, on 1 Dask worker and on 2.

The sweep: the grid solver on d = 1 (σ = erf, teacher erf(1.5x), 201 grid points), steps run +
bounds, β ∈ {0.25, 0.5, 1, 2} × τ ∈ {0.25, 0.5, 1, 2}. Timed, each into a fresh directory:

- ``loop``: ``run_sweep(workers=0)`` — the same points one after another in one process, once in
  a fresh process with XLA single-threaded as in a Dask worker (the baseline for Dask's overhead),
  once in this process with XLA's default threads (both cores);
- ``dask-1``, ``dask-2``: an embedded LocalCluster of 1 or 2 single-threaded worker processes
  (cluster start-up included; it is also timed on its own).

Reported: wall times, the speed-up dask-1 / dask-2, and Dask's per-point overhead
(dask-1 − single-threaded loop − cluster start-up) / 16. Aggregation (sweep.nc/csv/html) is timed once, apart.
The machine (CPU, cores, load average) is printed first: on a shared machine the speed-up is
bounded by the cores actually free.

Usage: python studies/benchmarks/bench_sweep.py [--smoke] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

BASE = """
[problem]
dim = 1
[problem.target]
kind = "teacher"
weights = [[1.5]]
coefficients = [1.0]
[solver]
method = "grid"
grid_points = {grid}
"""

SWEEP = """
[sweep]
base = "base.toml"
steps = ["run", "bounds"]
[sweep.grid]
"regularization.beta" = {betas}
"regularization.tau" = {taus}
"""


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"{platform.node()}: {cpu}, {cores} cores, Python {platform.python_version()}, "
            f"load average {' '.join(f'{x:.2f}' for x in load)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="4 points, loop and 1 worker only (the test suite)")
    ap.add_argument("--out", default=None, help="working directory (default: a temporary one)")
    args = ap.parse_args(argv)

    import distributed

    from bolt.sweep import load_sweep, run_sweep
    from bolt.sweep.aggregate import write_aggregates
    from bolt.sweep.runner import WORKER_ENV, connect

    print(machine())
    print(f"dask/distributed {distributed.__version__}")
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    betas, taus = ([0.5, 1.0], [0.5, 1.0]) if args.smoke else ([0.25, 0.5, 1.0, 2.0], [0.25, 0.5, 1.0, 2.0])
    (work / "base.toml").write_text(BASE.format(grid=101 if args.smoke else 201))
    (work / "sweep.toml").write_text(SWEEP.format(betas=betas, taus=taus))
    spec = load_sweep(work / "sweep.toml")
    n = len(spec.points)
    times = {}

    t0 = time.perf_counter()
    client, cluster = connect(None, 1, 20.0)
    client.close()
    cluster.close()
    times["cluster start-up (1 worker)"] = time.perf_counter() - t0

    # the plain loop with XLA single-threaded, as in a Dask worker: a fresh process with WORKER_ENV
    code = ("import sys, time; from bolt.sweep import load_sweep, run_sweep; t0 = time.perf_counter(); "
            "r = run_sweep(load_sweep(sys.argv[1]), sys.argv[2], workers=0, quiet=True, aggregate=False); "
            "assert not r.failed; print(time.perf_counter() - t0)")
    env = {**os.environ, **WORKER_ENV}
    t0 = time.perf_counter()
    sub = subprocess.run([sys.executable, "-c", code, str(work / "sweep.toml"), str(work / "loop-1")], env=env,
                         capture_output=True, text=True, check=True)
    times["loop, XLA 1 thread (process)"] = time.perf_counter() - t0
    times["  of which in run_sweep"] = float(sub.stdout.strip().splitlines()[-1])
    modes = [("loop, XLA default threads", 0, "loop-n"), ("dask-1", 1, "dask-1")]
    modes += [] if args.smoke else [("dask-2", 2, "dask-2")]
    for label, workers, sub_dir in modes:
        t0 = time.perf_counter()
        res = run_sweep(spec, work / sub_dir, workers=workers, quiet=True, aggregate=False)
        times[label] = time.perf_counter() - t0
        assert not res.failed, res.failed
    t0 = time.perf_counter()
    write_aggregates(spec, work / "dask-1", res.records)
    times["aggregation (nc, csv, html)"] = time.perf_counter() - t0

    print(f"{n}-point sweep (grid solver, d = 1, run + bounds)")
    for k, v in times.items():
        print(f"  {k:<32} {v:8.1f} s")
    overhead = (times["dask-1"] - times["loop, XLA 1 thread (process)"] - times["cluster start-up (1 worker)"]) / n
    print(f"  Dask per-point overhead (dask-1 - loop, 1 thread - start-up) / {n}: {overhead * 1000:.0f} ms")
    if "dask-2" in times:
        print(f"  speed-up dask-1 / dask-2: {times['dask-1'] / times['dask-2']:.2f}x")
    print(machine())
    return times


if __name__ == "__main__":
    main()
