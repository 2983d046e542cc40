"""Benchmarks for the fixed-point solvers (issue: Boltzmann fixed point).

(a) picard-nuts (µ_k passed as data, one compilation) against a straightforward NumPyro loop
    that rebuilds the model with µ_k baked in and recompiles at every Picard iteration, for the
    same iterations, reporting both final residuals;
(b) one MFLD step at N = 4096, d = 10 against a plain NumPy implementation of the same step;
(c) MFLD step time and peak temporary memory against N, on both evaluation routes.

Usage: python studies/benchmarks/bench_solvers.py [--smoke]
Every timing is a median of repeats after a warm-up call; ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

import bolt  # noqa: E402
from bolt.config import load_config, problem_from_config  # noqa: E402
from bolt.estimators.ksd import ksd  # noqa: E402
from bolt.gibbs.mfld import build_step  # noqa: E402
from bolt.solve import solve  # noqa: E402


def machine() -> str:
    return (f"{platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | "
            f"jax {jax.__version__} ({jax.default_backend()}) | numpyro {numpyro.__version__}")


def timeit(fn, repeats=5):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def bench_picard(iterations: int, particles: int):
    pb = problem_from_config(load_config(None))
    t = time.perf_counter()
    res = solve(pb, "picard-nuts", particles=particles, max_iterations=iterations, min_iterations=iterations,
                tolerance=1e-9, warmup=300, progress_bar=False)
    t_bolt = time.perf_counter() - t

    # naive: a fresh model closing over µ_k (a constant), a fresh MCMC with warmup, every iteration
    t = time.perf_counter()
    fld = pb.field(jnp.sqrt(pb.tau) * jax.random.normal(jax.random.PRNGKey(0), (particles * 4, pb.d)))
    chains = 4
    for k in range(iterations):
        def model(fld=fld):
            w = numpyro.sample("w", dist.Normal(jnp.zeros(pb.d), np.sqrt(pb.tau)).to_event(1))
            numpyro.factor("psi", -(pb.beta / pb.tau) * pb.psi_field(w[None, :], fld)[0])

        mcmc = MCMC(NUTS(model), num_warmup=300, num_samples=particles // chains, num_chains=chains,
                    chain_method="vectorized", progress_bar=False)
        mcmc.run(jax.random.PRNGKey(k))
        samples = mcmc.get_samples()["w"]
        new = pb.field(samples)
        fld = pb.mix(fld, new, 0.5)
    sub = samples[:: max(1, particles // 1000)]
    residual_naive = float(ksd(sub, pb.score(sub, new)))
    t_naive = time.perf_counter() - t
    return t_bolt, t_naive, res.residual, residual_naive


def numpy_mfld_step(W, V, c, beta, tau, h, rng):
    """The same exponential-Euler MFLD step in plain NumPy (arcsine route, teacher target)."""
    def kgrad(w, v, a):
        A = 1 + 2 * np.sum(w * w, 1)
        B = 1 + 2 * np.sum(v * v, 1)
        C = w @ v.T
        g = (4 / np.pi) * a[None, :] / np.sqrt(A[:, None] * B[None, :] - 4 * C * C)
        return g @ v - (2 * np.sum(g * C, 1) / A)[:, None] * w

    n = W.shape[0]
    grad = kgrad(W, W, np.full(n, 1.0 / n)) - kgrad(W, V, c)
    decay = np.exp(-h)
    return decay * W - (1 - decay) * beta * grad + np.sqrt(tau * (1 - decay**2)) * rng.standard_normal(W.shape)


def bench_mfld_step(n: int, d: int):
    rng = np.random.default_rng(0)
    V = rng.normal(size=(3, d))
    c = np.array([1.0, -0.5, 0.5])
    pb = bolt.make_problem("erf", bolt.Teacher(V, c), beta=1.0, tau=0.5)
    W = np.sqrt(0.5) * rng.normal(size=(n, d))
    step = jax.jit(build_step(pb))
    Wj, key = jnp.asarray(W), jax.random.PRNGKey(0)
    t_jax = timeit(lambda: step(key, Wj, 1.0, 0.5, 0.02).block_until_ready())
    t_np = timeit(lambda: numpy_mfld_step(W, V, c, 1.0, 0.5, 0.02, rng), repeats=3)
    return t_jax, t_np


def bench_scaling(ns, d: int, route: str):
    rng = np.random.default_rng(0)
    V = rng.normal(size=(3, d))
    inputs = bolt.GaussianInputs() if route == "arcsine" else bolt.SampleInputs(4096)
    pb = bolt.make_problem("erf", bolt.Teacher(V), inputs=inputs, beta=1.0, tau=0.5)
    rows = []
    for n in ns:
        W = jnp.asarray(np.sqrt(0.5) * rng.normal(size=(n, d)))
        step = jax.jit(build_step(pb))
        compiled = step.lower(jax.random.PRNGKey(0), W, 1.0, 0.5, 0.02).compile()
        mem = compiled.memory_analysis()
        temp = getattr(mem, "temp_size_in_bytes", float("nan")) if mem is not None else float("nan")
        t = timeit(lambda W=W, step=step: step(jax.random.PRNGKey(0), W, 1.0, 0.5, 0.02).block_until_ready(),
                   repeats=3 if n < 30_000 else 1)
        rows.append((n, t, temp, n * n * 8))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (used by the test suite)")
    args = ap.parse_args(argv)
    print("machine:", machine())
    it, part = (2, 200) if args.smoke else (5, 1000)
    tb, tn, rb, rn = bench_picard(it, part)
    print(f"(a) picard-nuts, {it} iterations, {part} draws: bolt {tb:.1f} s (residual {rb:.3f}) | "
          f"rebuild-and-recompile loop {tn:.1f} s (residual {rn:.3f}) | speed-up x{tn / tb:.2f}")
    n, d = (512, 10) if args.smoke else (4096, 10)
    tj, tnp = bench_mfld_step(n, d)
    print(f"(b) one MFLD step, N = {n}, d = {d}: jax {1e3 * tj:.1f} ms | numpy {1e3 * tnp:.1f} ms | "
          f"speed-up x{tnp / tj:.2f}")
    for route, ns in (("expectation", [1000, 3000] if args.smoke else [1000, 3000, 10_000, 30_000, 100_000]),
                      ("arcsine", [1000, 3000] if args.smoke else [1000, 3000, 10_000, 30_000, 100_000])):
        print(f"(c) MFLD step vs N, d = 10, {route} route:")
        rows = bench_scaling(ns, 10, route)
        for n, t, temp, nn in rows:
            print(f"    N = {n:>6}: {1e3 * t:9.1f} ms/step | temp memory {temp / 2**20:8.1f} MiB "
                  f"(an N x N float64 matrix would be {nn / 2**20:9.1f} MiB)")
        if len(rows) > 1:
            slope = np.polyfit(np.log([r[0] for r in rows]), np.log([r[1] for r in rows]), 1)[0]
            print(f"    log-log slope of time in N: {slope:.2f}")


if __name__ == "__main__":
    main()
