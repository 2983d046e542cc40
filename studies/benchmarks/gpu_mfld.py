"""MFLD step time against N on the expectation route, on whatever device JAX sees (the Python part of gpu.sh).

Problem: erf units, d = 10, a fixed input sample of n_x = 4096 Gaussian inputs (``inputs = "sample"``,
so the route is the expectation route: f̂(X; µ̂) = Σ_i a_i σ(X; w_i) over the particles, then the
gradient of Ψ(w) = E_n[(f̂ − y) σ(X; w)] for every particle; no N × N matrix), teacher target with 3
neurons, β = 1, τ = 0.5, float64 (``--precision float32``: the step in float32). Both sums are
chunked (``bolt._chunk``) so the largest intermediate is ``max_block`` elements: N = 10⁷ needs the
particles (0.8 GB), the noise and one block.

For each N it prints the compile time, the time of one jitted step (median of repeats) and of one
jitted ``lax.scan`` of ``--scan`` steps (per step: what a solve pays), the throughput in
particle-input pairs per second, and the device's peak memory where JAX reports it.

Usage:
  python studies/benchmarks/gpu_mfld.py --sizes 100000 1000000 10000000
  python studies/benchmarks/gpu_mfld.py --smoke        # tiny N on the CPU (syntax/dry run)
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import bolt  # noqa: E402
from bolt.gibbs.mfld import build_step  # noqa: E402


def machine() -> str:
    devs = jax.devices()
    return (f"{platform.node()} | {os.cpu_count()} CPU cores | jax {jax.__version__} | backend "
            f"{jax.default_backend()} | {len(devs)} x {devs[0].device_kind}")


def peak_bytes() -> float:
    stats = jax.devices()[0].memory_stats() or {}
    return float(stats.get("peak_bytes_in_use", float("nan")))


def timeit(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def bench(n: int, d: int, n_x: int, scan: int, max_block: int, repeats: int, dtype=jnp.float64):
    rng = np.random.default_rng(0)
    V = rng.normal(size=(3, d))
    pb = bolt.make_problem("erf", bolt.Teacher(V), inputs=bolt.SampleInputs(n_x), beta=1.0, tau=0.5)
    assert pb.route == "expectation", pb.route
    if max_block:
        import dataclasses

        pb = dataclasses.replace(pb, max_block=max_block)
    W = (jnp.sqrt(0.5) * jax.random.normal(jax.random.PRNGKey(1), (n, d))).astype(dtype)
    step = build_step(pb)
    one = jax.jit(step)

    @jax.jit
    def block(key, W):
        return jax.lax.scan(lambda w, k: (step(k, w, 1.0, 0.5, 0.02), None), W, jax.random.split(key, scan))[0]

    key = jax.random.PRNGKey(0)
    t = time.perf_counter()
    one(key, W, 1.0, 0.5, 0.02).block_until_ready()
    block(key, W).block_until_ready()
    t_compile = time.perf_counter() - t
    t_one = timeit(lambda: one(key, W, 1.0, 0.5, 0.02).block_until_ready(), repeats)
    t_scan = timeit(lambda: block(key, W).block_until_ready(), max(1, repeats // 2)) / scan
    return t_compile, t_one, t_scan, peak_bytes()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--inputs", type=int, default=4096, help="input sample size n_x")
    ap.add_argument("--scan", type=int, default=10, help="steps per jitted lax.scan block")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-block", type=int, default=0,
                    help="elements per chunk (0: bolt's default, 2^22 = 32 MiB in float64)")
    ap.add_argument("--precision", choices=("float64", "float32"), default="float64",
                    help="dtype of the particles (float32: the whole step in float32, as solver.precision)")
    ap.add_argument("--smoke", action="store_true", help="N = 1000, 3000 on any device (a dry run)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.repeats, args.scan = [1000, 3000], 2, 2
    print("machine:", machine(), flush=True)
    print("devices:", jax.devices(), flush=True)
    print(f"MFLD step, expectation route, d = {args.dim}, n_x = {args.inputs}, {args.precision}, "
          f"max_block = {args.max_block or 'default'}:", flush=True)
    for n in args.sizes:
        try:
            tc, t1, ts, peak = bench(n, args.dim, args.inputs, args.scan, args.max_block, args.repeats,
                                   jnp.float32 if args.precision == "float32" else jnp.float64)
        except Exception as exc:  # an out-of-memory at 10^7 must not lose the smaller sizes' lines
            print(f"  N = {n:>9}: failed: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        print(f"  N = {n:>9}: compile {tc:6.1f} s | one step {1e3 * t1:10.2f} ms | in a {args.scan}-step scan "
              f"{1e3 * ts:10.2f} ms/step | {n * args.inputs / ts:.3g} particle-input pairs/s | "
              f"peak device memory {peak / 2**30:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
