"""Online SGD steps per second: bolt's vmapped ``lax.scan`` against a plain NumPy loop of the same update.

Problem: the default d = 3 problem (σ = erf, Gaussian inputs, 3-neuron teacher), minibatch 1,
η = 1/steps. For each (N, repetitions) bolt runs ``steps`` steps of every repetition in one jitted scan
(the scan of ``bolt.dynamics.sgd.run_sgd`` — ``init``, ``build_step``, ``vmap`` over repetitions — without its
O(N²) risk records; compilation timed separately from a warm second call), and NumPy runs the same
update in a Python loop over steps and repetitions
(``W += ηβ (y − mean σ(x; W)) · σ'(x; W) x`` with ``σ' = (2/√π) exp(−⟨w, x⟩²)``). Both in float64.
The ratio is NumPy time / bolt time for the same number of neuron updates.

Usage: python studies/benchmarks/bench_sgd.py [--smoke]
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
from scipy.special import erf  # noqa: E402

from bolt.config import load_config, problem_from_config  # noqa: E402
from bolt.dynamics.sgd import SGDState, build_step, init  # noqa: E402


def numpy_sgd(pb, N, steps, reps, seed=0):
    """The same update in NumPy: loop over repetitions and steps (one input per step)."""
    rng = np.random.default_rng(seed)
    V = np.asarray(pb.target.weights, np.float64)
    c = np.asarray(pb.target.coefficients, np.float64)
    eta, beta, d = 1.0 / steps, pb.beta, pb.d
    out = []
    for _ in range(reps):
        W = np.sqrt(pb.tau) * rng.normal(size=(N, d))
        for _ in range(steps):
            x = rng.normal(size=d)
            y = erf(V @ x) @ c
            z = W @ x
            r = y - erf(z).mean()
            W += (eta * beta * r) * (2.0 / np.sqrt(np.pi)) * np.exp(-z * z)[:, None] * x[None, :]
        out.append(W)
    return out


def bolt_sgd_fn(pb, N, steps, reps):
    """The scan of ``run_sgd`` without its R_N records (which cost O(N²) each): init, vmap over repetitions,
    one jitted ``lax.scan`` over the steps with ``build_step``."""
    step = build_step(pb, 1)

    @jax.jit
    def run(key, beta, eta):
        keys = jax.random.split(key, reps)

        def one(k):
            k0, k1 = jax.random.split(k)
            W0 = init(k0, N, pb.d, pb.tau).particles

            def body(W, i):
                st, info = step(jax.random.fold_in(k1, i), SGDState(W), beta, eta)
                return st.particles, info.loss

            return jax.lax.scan(body, W0, jnp.arange(steps))

        return jax.vmap(one)(keys)

    return lambda: jax.block_until_ready(run(jax.random.PRNGKey(0), pb.beta, 1.0 / steps))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    pb = problem_from_config(load_config(None))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, jax {jax.__version__} "
          f"({jax.default_backend()}), numpy {np.__version__}, float64")
    sizes = [(100, 1), (100, 16), (1000, 1), (1000, 16), (10000, 4)] if not args.smoke else [(50, 2)]
    steps = 2000 if not args.smoke else 100
    print(f"steps = {steps}, minibatch 1, default d = 3 problem")
    print(f"{'N':>6} {'reps':>5} {'bolt compile+run':>17} {'bolt warm':>10} {'bolt steps/s':>13} {'numpy':>9} "
          f"{'numpy steps/s':>14} {'ratio':>7}")
    for N, reps in sizes:
        fn = bolt_sgd_fn(pb, N, steps, reps)
        t0 = time.perf_counter()
        fn()
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn()
        warm = time.perf_counter() - t0
        np_steps = steps if N * reps <= 20000 else steps // 4  # keep the NumPy side under ~a minute
        t0 = time.perf_counter()
        numpy_sgd(pb, N, np_steps, reps)
        tn = (time.perf_counter() - t0) * steps / np_steps
        # steps/s counts steps of every repetition (reps × steps in total)
        print(f"{N:>6} {reps:>5} {cold:>16.2f}s {warm:>9.3f}s {reps * steps / warm:>13.0f} {tn:>8.2f}s "
              f"{reps * steps / tn:>14.0f} {tn / warm:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
