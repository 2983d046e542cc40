"""Lazy training as transport, ported onto ``bolt sweep``: the measurement of ``run.py`` on a sweep's µ*.

``bolt sweep studies/lazy_training/sweep.toml --out DIR`` solves µ* for every (τ, β) (grid solver,
401 points: the same solve as ``run.py``); this script reads each point's ``results.nc``, builds the
exact monotone map T = F_µ*⁻¹ ∘ F_γ and measures, for W_1..W_N iid γ_τ, the quantities of
``run.py`` (mean over replicates ± SE), with the same random stream in the same order — so on the
same grid it reproduces ``run.py``'s numbers exactly.

Usage: python studies/lazy_training/from_sweep.py DIR [--smoke] [--out OUT] [--from-results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

from bolt.config import load_config, problem_from_config  # noqa: E402
from bolt.io import load_json, load_results  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from run import measure_map, plot  # noqa: E402  (run.py's measurement and figure)


def measure_point(point_dir: Path, ns, reps, rng) -> list[dict]:
    """run.py's measurement on one point directory (µ* from its results.nc)."""
    cfg = load_config(point_dir / "config.toml")
    idata = load_results(point_dir / "results.nc")
    P = np.asarray(idata.particles["particles"].values)
    w = np.asarray(idata.particles["weights"].values)
    return measure_map(problem_from_config(cfg), P, w, ns, reps, rng)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir", help="a directory written by bolt sweep (sweep.toml or smoke.toml of this study)")
    ap.add_argument("--smoke", action="store_true", help="run.py --smoke's sizes: N in (50, 200), 4 replicates")
    ap.add_argument("--out", default=None, help="where results.json and lazy_training.png go (default: SWEEP_DIR)")
    ap.add_argument("--from-results", action="store_true",
                    help="only draw lazy_training.png from OUT/results.json (no measurement)")
    args = ap.parse_args(argv)
    if args.from_results:
        out = Path(args.out or args.sweep_dir)
        plot(load_json(out / "results.json"), out / "lazy_training.png")
        print(f"wrote {out / 'lazy_training.png'}")
        return None
    t0 = time.time()
    ns, reps = ([50, 200], 4) if args.smoke else ([100, 1000, 4000], 20)
    sweep = Path(args.sweep_dir)
    rng = np.random.default_rng(0)
    rows = []
    for p in load_json(sweep / "sweep.json")["points"]:  # in the sweep's order: tau outer, beta inner (as run.py)
        if p["status"] not in ("done", "skipped"):
            raise SystemExit(f"point {p['name']} did not finish ({p['status']}): {p['error']}")
        rows += measure_point(sweep / "points" / p["name"], ns, reps, rng)
    out = Path(args.out or sweep)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(f"tau {r['tau']:>5} beta {r['beta']:>6} N {r['N']:>5} | mean|T(W)-W| {r['mean_displacement']:.4f} ± "
              f"{r['mean_displacement_se']:.4f} | ||f-f_N(T(W))||^2 {r['risk_transported']:.4f} ± "
              f"{r['risk_transported_se']:.4f} | R(mu*) {r['risk_mu_star']:.4f}")
    plot(rows, out / "lazy_training.png")
    print(f"runtime {time.time() - t0:.1f} s; results in {out / 'results.json'} and {out / 'lazy_training.png'}")
    return rows


if __name__ == "__main__":
    main()
