"""The default ``bolt run`` end to end (issue: speed, target 1): this tree against a baseline tree.

Each run is a fresh ``bolt run --quiet`` process on the built-in default problem, timed from the
outside (wall clock, imports included), with the phases read from ``summary.json``'s ``timings``
block where the tree writes one. Three runs per tree: *cold* (an empty compilation cache) and
then twice *warm* (the cache the cold run filled; bolt turns JAX's persistent compilation cache
on, a tree without that feature simply compiles again). Precision is compared beside the times:
KL and F with their standard errors, the W2² to the prior with its SE.

Usage:
  git worktree add --detach /tmp/bolt-base <commit>        # the baseline, e.g. 8685f68
  python studies/benchmarks/bench_run.py --baseline /tmp/bolt-base [--runs 3] [--seeds 0,1,2]

With ``--seeds``, the cold run uses the first seed and then each seed gets one warm run (a config
file with ``[solver] seed = s``; the solve's iteration count, hence its time, varies with the seed),
and the warm median is over the seeds. Prints the machine, one line per run, the medians and the
ratio baseline / this tree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]


def run_once(tree: Path, out: Path, cache: Path, seed: int | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), JAX_PLATFORMS="cpu", BOLT_CACHE_DIR=str(cache))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    config = []
    if seed is not None:
        cfg = out.parent / f"seed{seed}.toml"
        cfg.write_text(f"[solver]\nseed = {int(seed)}\n")
        config = [str(cfg)]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; from bolt.cli import main; sys.exit(main())",
                    "run", *config, "--out", str(out), "--quiet"], env=env, check=True, cwd=out.parent)
    wall = time.perf_counter() - t0
    s = json.loads((out / "summary.json").read_text())
    return {"wall": wall, "timings": s.get("timings", {}), "kl": s["kl"], "kl_se": s["kl_se"],
            "F": s["free_energy"], "F_se": s["free_energy_se"], "w2": s["w2_squared_to_prior"],
            "w2_se": s.get("w2_squared_to_prior_se", float("nan")), "solver": s["solver"],
            "iterations": s["iterations"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="a checkout of the baseline commit")
    ap.add_argument("--runs", type=int, default=3, help="runs per tree: one cold, the rest warm")
    ap.add_argument("--seeds", default="", help="comma-separated solver seeds: one cold run at the first, "
                                                 "one warm run at each (replaces --runs)")
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    plan = [seeds[0]] + seeds if seeds else [None] * args.runs
    import jax

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, "
          f"python {platform.python_version()}, jax {jax.__version__} (CPU), float64")
    med = {}
    for name, tree in (("baseline", Path(args.baseline).resolve()), ("this tree", HERE)):
        work = Path(tempfile.mkdtemp(prefix="bolt-bench-run-"))
        cache = work / "cache"
        rows = []
        for i, seed in enumerate(plan):
            r = run_once(tree, work / f"run{i}", cache, seed)
            rows.append(r)
            phases = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
            at = "" if seed is None else f", seed {seed}"
            print(f"{name:9s} run {i} ({'cold' if i == 0 else 'warm'}{at}): {r['wall']:.1f} s wall "
                  f"[{phases}] {r['solver']} {r['iterations']} it; KL {r['kl']:.4f} ± {r['kl_se']:.4f} "
                  f"({100 * r['kl_se'] / r['kl']:.2f} %), F {r['F']:.5f} ± {r['F_se']:.5f}, "
                  f"W2² {r['w2']:.4f} ± {r['w2_se']:.4f}", flush=True)
        shutil.rmtree(work, ignore_errors=True)
        med[name] = (rows[0]["wall"], sorted(r["wall"] for r in rows[1:])[(len(rows) - 2) // 2] if len(rows) > 1
                     else float("nan"))
    (bc, bw), (nc, nw) = med["baseline"], med["this tree"]
    print(f"cold: baseline {bc:.1f} s, this tree {nc:.1f} s, ratio {bc / nc:.2f}x")
    print(f"warm (median): baseline {bw:.1f} s, this tree {nw:.1f} s, ratio {bw / nw:.2f}x")


if __name__ == "__main__":
    main()
