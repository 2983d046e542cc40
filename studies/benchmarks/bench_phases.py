"""The phases after the solve against the solve's last iteration (issue: speed, target 5).

Runs the default problem (``bolt run``'s pipeline, ``bolt.commands.run_config``) twice in one
process with the compilation cache warm: the first run pays the process's tracing, lowering,
program loading and imports, the second (like a sweep worker's next point) only the work. For
each run it prints the time between checkpoints (one iteration each; the last gap also holds the
final draws when their check sent the solve back to iterating), the phases of ``summary.json``'s
``timings`` and each phase's ratio to an iteration (the median after the first).

Then the floors of the two largest phases:

- W2² (the summary's debiased exact-OT estimate, 16 solves of 1250 points): one solve by POT's
  network simplex against SciPy's ``linear_sum_assignment`` (the same assignment, without the dual
  potentials the standard error needs), and the spread of one debiasing self-term over fresh
  Gaussian samples (what fewer self-terms would add to W2²'s error);
- the report: one Matplotlib figure of four line panels saved as PNG (the report has six figures).

Usage:
  python studies/benchmarks/bench_phases.py      # about 1 minute on 2 cores once the cache is warm
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def run_twice() -> None:
    import bolt.io as bio
    from bolt.commands import run_config
    from bolt.config import load_config

    stamps: list[float] = []
    save = bio.save_checkpoint

    def stamped(*a, **k):  # run_config checkpoints after every iteration
        stamps.append(time.perf_counter())
        return save(*a, **k)

    bio.save_checkpoint = stamped
    work = Path(tempfile.mkdtemp(prefix="bolt-bench-phases-"))
    try:
        for i, label in enumerate(("first run in the process", "second run in the same process")):
            stamps.clear()
            t0 = time.perf_counter()
            s = run_config(load_config(None), work / f"run{i}", quiet=True)
            wall = time.perf_counter() - t0
            t = s["timings"]
            iters = [b - a for a, b in zip(stamps, stamps[1:])]
            # an iteration after the first at stationarity; the last gap between checkpoints can be
            # longer: when the final draws' check sends the solve back, they fall into it
            typical = statistics.median(iters[1:])
            print(f"{label}: {wall:.2f} s, {s['iterations']} iterations")
            print("  between checkpoints (s): " + ", ".join(f"{x:.3f}" for x in iters))
            print(f"  an iteration (median after the first) {typical:.3f} s; phase / iteration:")
            for name, v in t.items():
                if name != "solve":
                    print(f"    {name:10s} {v:6.2f} s  x{v / typical:5.1f}")
    finally:
        bio.save_checkpoint = save
        shutil.rmtree(work, ignore_errors=True)


def w2_floor() -> None:
    import numpy as np
    import ot
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    n, d, tau = 1250, 3, 0.5
    w = np.full(n, 1.0 / n)
    x = rng.normal(size=(n, d)) * np.sqrt(tau) + 0.2
    y = rng.normal(size=(n, d)) * np.sqrt(tau)
    M = ot.dist(x, y)
    t_emd, t_lsa = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        plan, log = ot.emd(w, w, M, numItermax=10**7, log=True)
        t_emd.append(time.perf_counter() - t0)
        assert log["result_code"] == 1, log["warning"]
        t0 = time.perf_counter()
        r, c = linear_sum_assignment(M)
        t_lsa.append(time.perf_counter() - t0)
    assert abs(float(np.sum(plan * M)) - float(M[r, c].mean())) < 1e-9
    print(f"W2² floor, one exact solve at n = {n}, d = {d} (median of 3, one thread): POT emd "
          f"{statistics.median(t_emd) * 1e3:.0f} ms, SciPy linear_sum_assignment "
          f"{statistics.median(t_lsa) * 1e3:.0f} ms (no dual potentials)")
    selves = []
    for _ in range(20):
        a, b = rng.normal(size=(2, n, d)) * np.sqrt(tau)
        Mab = ot.dist(a, b)
        selves.append(float(np.sum(ot.emd(w, w, Mab, numItermax=10**7) * Mab)))
    s = float(np.std(selves, ddof=1))
    print(f"one self-term W2²(γ-sample, γ-sample) at n = {n}, d = {d}, τ = {tau}: mean {np.mean(selves):.4f}, "
          f"sd {s:.4f} over 20 pairs; the estimate's self-term part has sd s/√8 = {s / np.sqrt(8):.4f} with "
          f"4 pairs a side (now), s/√2 = {s / np.sqrt(2):.4f} with one")


def figure_floor() -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        fig, axes = plt.subplots(1, 4, figsize=(14, 2.8))
        for ax in axes:
            ax.plot(np.arange(10), np.arange(10) ** 2, "o-", ms=3)
            ax.set_title("panel")
        fig.tight_layout()
        fig.savefig(io.BytesIO(), format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        times.append(time.perf_counter() - t0)
    print(f"report floor: one figure of four line panels to PNG (tight layout, 90 dpi): "
          f"{statistics.median(times[1:]) * 1e3:.0f} ms (median of 3 after one warm-up)")


def main() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    from bolt.cache import enable_compilation_cache

    enable_compilation_cache()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
          f"python {platform.python_version()}, jax {jax.__version__} (CPU), float64")
    run_twice()
    w2_floor()
    figure_floor()


if __name__ == "__main__":
    main()
