"""bolt's polynomial asin against XLA's (the arcsine kernel's one transcendental; issue 11).

XLA lowers ``asin`` on CPU to ``2·atan2(x, 1 + √(1 − x²))``, about 7 ns per element in float64 on
this VM, three times a square root. The arcsine kernel evaluates it once per particle pair, and
the pairs are the cost of Ψ everywhere on the arcsine route: log Z's 10⁵ proposals against the
field, Ψ(w_i; µ̂) at the final draws, herding's kernel sums, the KSD and drift tests.
``bolt.problem.kernels.arcsin`` reduces to ``t ≤ ½`` (``asin a = π/2 − 2 asin √((1 − a)/2)``) and
evaluates ``t + t³ g(t²)`` with a degree-11 polynomial ``g`` (π/2 in two parts): no division, one
square root.

Printed, each warm (median of repeats) and in the same run:
- asin alone over 10⁷ elements (summed, so the result is not written back to memory);
- ``Problem.psi_field`` of the default problem at 10⁵ points against a 1000-point field (log Z's
  importance proposals in the summary) — with XLA's asin, then bolt's;
- the error of each against the exact asin (NumPy's in x87 extended precision), in units of float64
  spacing.

Usage: python studies/benchmarks/bench_arcsin.py [--smoke]
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
from bench_solvers import machine  # noqa: E402

import bolt.problem.kernels as kernels  # noqa: E402
from bolt.config import load_config, problem_from_config  # noqa: E402


def timed(f, *args, repeats=5):
    jax.block_until_ready(f(*args))
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    print(machine())
    n_elt, n_psi = (10**5, 10**3) if a.smoke else (10**7, 10**5)
    x = jax.random.uniform(jax.random.PRNGKey(0), (n_elt // 1000, 1000), jnp.float64, -1.0, 1.0)
    fast = kernels.arcsin
    t_xla = timed(jax.jit(lambda x: jnp.arcsin(x).sum(1)), x)
    t_bolt = timed(jax.jit(lambda x: fast(x).sum(1)), x)
    print(f"asin, {n_elt:.0e} elements: XLA {t_xla / n_elt * 1e9:.2f} ns/element, bolt {t_bolt / n_elt * 1e9:.2f} "
          f"ns/element: x{t_xla / t_bolt:.2f}")

    rng = np.random.default_rng(1)
    grid = np.concatenate([np.linspace(-1.0, 1.0, 200_001), 1.0 - np.geomspace(1e-16, 0.5, 4000),
                           rng.uniform(-1.0, 1.0, n_elt // 5), rng.uniform(0.5, 0.62, n_elt // 5)])
    extended = np.finfo(np.longdouble).eps < 1e-18  # x87 extended: NumPy's asin there is exact for float64
    ref = np.arcsin(grid.astype(np.longdouble if extended else np.float64))
    spacing = np.spacing(np.abs(ref).astype(np.float64) + (ref == 0)).astype(ref.dtype)
    for name, f in (("XLA", jnp.arcsin), ("bolt", fast), ("NumPy", np.arcsin)):
        got = np.asarray(jax.jit(f)(jnp.asarray(grid)) if name != "NumPy" else f(grid))
        err = np.abs(got.astype(ref.dtype) - ref) / spacing
        print(f"  {name:5s} max error against the {'exact value' if extended else 'NumPy float64 value'}: "
              f"{float(err.max()):.2f} ulp ({len(grid)} points, half of the random ones in [0.5, 0.62])")

    times, vals = {}, {}
    for name, f in (("XLA", jnp.arcsin), ("bolt", fast)):
        kernels.arcsin = f  # looked up when the kernel is traced: a fresh problem traces it again
        problem = problem_from_config(load_config(None))
        key = jax.random.PRNGKey(1)
        P = np.sqrt(problem.tau) * jax.random.normal(key, (1000, problem.d))
        fld = problem.field(P, jnp.full(1000, 1e-3))
        W = jax.random.normal(jax.random.fold_in(key, 1), (n_psi, problem.d))
        times[name], vals[name] = timed(problem.psi_field, W, fld), np.asarray(problem.psi_field(W, fld))
    kernels.arcsin = fast
    print(f"psi_field, {n_psi:.0e} points x 1000 field points: XLA asin {times['XLA'] * 1e3:.1f} ms, bolt asin "
          f"{times['bolt'] * 1e3:.1f} ms: x{times['XLA'] / times['bolt']:.2f}; largest difference "
          f"{np.max(np.abs(vals['XLA'] - vals['bolt'])):.1e} (|Psi| up to {np.max(np.abs(vals['XLA'])):.2f})")


if __name__ == "__main__":
    main()
