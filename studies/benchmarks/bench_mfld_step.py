"""One MFLD step at N = 4096, d = 10 (arcsine route) against NumPy (issue 11, target 6).

The problem and the NumPy step are those of bench_solvers.py (b): erf units, Gaussian inputs, a
3-neuron teacher, β = 1, τ = 0.5, exponential Euler with h = 0.02. Timed (median of repeats, warm):

- numpy:          the same step in plain NumPy, float64 (the baseline);
- jax f64 1 step: ``jit(build_step)``, one dispatch per step (bench_solvers.py (b));
- jax f64 scan:   ``jit`` of a ``lax.scan`` of ``--scan`` steps, per step (what ``solve_mfld`` runs:
                  the dispatch is amortised over a block);
- jax f32 …:      the same with float32 particles (the problem's constants are cast to the particles'
                  dtype inside the kernels, so the whole step is float32).

Accuracy of float32: the relative error of one drift evaluation β∇Ψ(W; µ̂_N) against float64, and
``--steps`` steps run in both precisions from the same start with the same noise: the largest
particle difference, and the difference of the risk R(µ̂_N) against that risk's own fluctuation
from block to block (the Monte Carlo noise the estimate carries anyway).

Usage: python studies/benchmarks/bench_mfld_step.py [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_solvers import machine, numpy_mfld_step  # noqa: E402

import bolt  # noqa: E402
from bolt.gibbs.mfld import build_step  # noqa: E402


def timeit(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--scan", type=int, default=10, help="steps per jitted scan")
    ap.add_argument("--steps", type=int, default=200, help="steps of the float32-vs-float64 trajectory")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    n, d = (512, 10) if args.smoke else (4096, 10)
    if args.smoke:
        args.steps, args.repeats = 20, 2
    print("machine:", machine())
    rng = np.random.default_rng(0)
    V = rng.normal(size=(3, d))
    c = np.array([1.0, -0.5, 0.5])
    pb = bolt.make_problem("erf", bolt.Teacher(V, c), beta=1.0, tau=0.5)
    W = np.sqrt(0.5) * rng.normal(size=(n, d))
    step = build_step(pb)
    key = jax.random.PRNGKey(0)

    def scan_fn(k):
        @jax.jit
        def run(key, W):
            return jax.lax.scan(lambda w, kk: (step(kk, w, 1.0, 0.5, 0.02), None), W, jax.random.split(key, k))[0]
        return run

    one, many = jax.jit(step), scan_fn(args.scan)
    rows = [("numpy f64, one step", timeit(lambda: numpy_mfld_step(W, V, c, 1.0, 0.5, 0.02, rng), 3))]
    for dt in (jnp.float64, jnp.float32):
        Wj = jnp.asarray(W, dt)
        name = "f64" if dt == jnp.float64 else "f32"
        rows.append((f"jax {name}, one jitted step",
                     timeit(lambda Wj=Wj: one(key, Wj, 1.0, 0.5, 0.02).block_until_ready(), args.repeats)))
        rows.append((f"jax {name}, {args.scan}-step lax.scan, per step",
                     timeit(lambda Wj=Wj: many(key, Wj).block_until_ready(), max(2, args.repeats // 2)) / args.scan))
    base = rows[0][1]
    print(f"one MFLD step, N = {n}, d = {d}, arcsine route:")
    for name, t in rows:
        print(f"  {name:38s} {1e3 * t:9.2f} ms   speed-up over numpy x{base / t:5.2f}")

    # accuracy of float32
    W64 = jnp.asarray(W)
    W32 = W64.astype(jnp.float32)
    g64 = pb.grad_psi(W64, W64)
    g32 = pb.grad_psi(W32, W32).astype(jnp.float64)
    rel = jnp.linalg.norm(g32 - g64, axis=1) / jnp.linalg.norm(g64, axis=1)
    print(f"float32 drift β∇Ψ(W; µ̂_N): relative error median {float(jnp.median(rel)):.2e}, "
          f"max {float(jnp.max(rel)):.2e}")
    block = 10

    def run(key, W):  # the same step with float64 noise cast to W's dtype: both precisions see the same noise
        def f(w, kk):
            grad = pb.grad_psi_field(w, pb.field(w))
            decay = float(np.exp(-0.02))
            noise = jax.random.normal(kk, w.shape, jnp.float64).astype(w.dtype)
            return decay * w - (1.0 - decay) * grad + float(np.sqrt(0.5 * (1.0 - decay**2))) * noise, None
        return jax.lax.scan(f, W, jax.random.split(key, block))[0]

    run = jax.jit(run)
    risks = {jnp.float64: [], jnp.float32: []}
    ends = {}
    for dt in (jnp.float64, jnp.float32):
        Wt = W64.astype(dt)
        for b in range(args.steps // block):
            Wt = run(jax.random.fold_in(key, b), Wt)
            risks[dt].append(float(pb.risk(Wt.astype(jnp.float64))))
        ends[dt] = Wt.astype(jnp.float64)
    r64, r32 = np.array(risks[jnp.float64]), np.array(risks[jnp.float32])
    tail = r64[len(r64) // 2:]
    noise = np.std(np.diff(tail), ddof=1) / np.sqrt(2) if len(tail) > 2 else float("nan")
    print(f"after {args.steps} steps from the same start with the same noise: max |W32 − W64| = "
          f"{float(jnp.max(jnp.abs(ends[jnp.float32] - ends[jnp.float64]))):.2e}; "
          f"R(µ̂) f64 {r64[-1]:.6f}, f32 {r32[-1]:.6f}, difference {abs(r32[-1] - r64[-1]):.2e} "
          f"(block-to-block fluctuation of R in f64: {noise:.2e}); "
          f"max over blocks of |ΔR| {np.max(np.abs(r32 - r64)):.2e}")


if __name__ == "__main__":
    main()
