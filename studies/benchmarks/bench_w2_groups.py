"""W2²(µ, γ_τ) by ``w2_debiased``: the group size ``max_exact`` against time, bias and standard error.

For N(m, S) against γ_τ = N(0, τI) (closed form, MATH.md §1) in d = 3 and 10, with n = 10⁴ draws of
each, the split-sample debiased estimator is run with groups of at most 2500, 1250 and 625 draws on
the *same* draws (``reps`` replications). Printed per setting: the mean z-score (estimate − truth)/se
with its standard error over the replications (bias), the sd of z (calibration of the se), the mean
se, and the wall time per estimate (the exact solves run on one thread per core). The baseline is
2500, the previous default; the ratio is its time over each setting's.

Usage: python studies/benchmarks/bench_w2_groups.py [--reps 32] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=32)
    ap.add_argument("--smoke", action="store_true", help="2 replications of n = 2000, d = 3")
    args = ap.parse_args(argv)
    from bolt.closed_forms import gaussian_w2_squared
    from bolt.transport.w2 import w2_debiased

    reps, n, dims = (2, 2000, (3,)) if args.smoke else (args.reps, 10_000, (3, 10))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
          f"numpy {np.__version__}; n = {n} draws of each law, {reps} replications")
    tau = 0.5
    for d in dims:
        m = np.linspace(0.25, -0.15, d) * np.sqrt(3 / d)
        S = np.diag(np.linspace(0.42, 0.62, d))
        truth = gaussian_w2_squared(m, S, tau)
        base = None
        for me in (2500, 1250, 625):
            rng = np.random.default_rng(d)  # the same draws for every group size
            z, ses, tt = [], [], 0.0
            for _ in range(reps):
                x = m + rng.normal(size=(n, d)) @ np.sqrt(S)
                y = np.sqrt(tau) * rng.normal(size=(n, d))
                t = time.perf_counter()
                w, se = w2_debiased(x, y, max_exact=me)
                tt += time.perf_counter() - t
                z.append((w.w2_squared - truth) / se)
                ses.append(se)
            z, t_each = np.asarray(z), tt / reps
            base = t_each if base is None else base
            print(f"d = {d:>2}, W2^2 = {truth:.4f}, max_exact {me:>4}: mean z {z.mean():+.2f} ± "
                  f"{z.std(ddof=1) / np.sqrt(reps):.2f}, sd z {z.std(ddof=1):.2f}, se {np.mean(ses):.4f}, "
                  f"{t_each:.2f} s each, x{base / t_each:.2f} vs 2500", flush=True)


if __name__ == "__main__":
    main()
