"""Are the default run's error bars right? KL, R and F over solves with different seeds (issue 11).

Solves the built-in default problem (``bolt run``'s config: picard-mala, control-variate field,
damping 0.7) with seeds 100, 101, ... and summarizes each; prints every solve's KL, R, F with their
standard errors (and KL's field part) and, over the seeds, the sd of each estimate against the mean
reported SE (a ratio near 1: calibrated; below 1: conservative). The sd over S seeds has a relative
error of about 1/sqrt(2(S − 1)) (18 % at 16).

Usage: python studies/benchmarks/calib_default.py [--seeds 16] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--smoke", action="store_true", help="2 seeds, small solves")
    args = ap.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    from bolt.commands import solver_settings
    from bolt.config import load_config, problem_from_config
    from bolt.estimators.summary import summarize
    from bolt.solve import solve

    cfg = load_config(None)
    pb = problem_from_config(cfg)
    kw = {**solver_settings(cfg), "progress_bar": False}
    if args.smoke:
        kw.update(particles=400, chains=8, warmup=100, max_iterations=4, final_blocks=1, field_size=200)
    seeds = range(2 if args.smoke else args.seeds)
    print(f"machine: {platform.machine()} | {os.cpu_count()} cores | jax {jax.__version__} | default problem, "
          f"{cfg['solver']['method']}, damping {kw['damping']}, field_cv {kw['field_cv']}", flush=True)
    rows = []
    for s in seeds:
        t0 = time.perf_counter()
        r = solve(pb, cfg["solver"]["method"], seed=100 + s, **kw)
        sm = summarize(jax.random.PRNGKey(500 + s), pb, r)
        rows.append([sm["kl"], sm["kl_se"], sm["risk"], sm["risk_se"], sm["free_energy"], sm["free_energy_se"]])
        print(f"seed {100 + s}: {r.iterations} it., KL {sm['kl']:.5f} ± {sm['kl_se']:.5f} (field "
              f"{sm['kl_field_se']:.5f}), R {sm['risk']:.5f} ± {sm['risk_se']:.5f}, F {sm['free_energy']:.5f} ± "
              f"{sm['free_energy_se']:.5f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    a = np.array(rows)
    for name, i in (("KL", 0), ("R", 2), ("F", 4)):
        sd = a[:, i].std(ddof=1)
        print(f"{name}: mean {a[:, i].mean():.5f}, sd over seeds {sd:.5f}, mean SE {a[:, i + 1].mean():.5f}, "
              f"ratio {sd / a[:, i + 1].mean():.2f}, mean relative SE {np.mean(a[:, i + 1] / a[:, i]):.2%}")


if __name__ == "__main__":
    main()
