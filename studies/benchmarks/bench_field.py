"""Field cost (issue: speed, target 4): the Picard buffer herded to m points against the whole buffer.

On the default problem a picard-mala solve with the whole buffer (``field_size = 0``, 4 blocks of
2000 draws = 8000 points) gives µ_K. For m in 250 … 4000 this prints

- the herding error ``MMD_K(ν_m, µ_K)`` over µ_K's own Monte Carlo noise (``herd_field``'s ratio),
- the rms and max of ``Ψ(w; ν_m) − Ψ(w; µ_K)`` over 2000 of the final draws, beside the same for a
  random subsample of m points and beside the rms Monte Carlo noise of Ψ(w; µ_K) itself
  (``sqrt(Var_µ K(w, ·) · Σ a_i²)``, averaged over the draws),
- the time of one gradient of Ψ at 40 query rows (the vectorised MALA chains) against the
  whole buffer, as a ratio, and the herding time.

Usage: python studies/benchmarks/bench_field.py
"""

from __future__ import annotations

import os
import platform
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from bolt.commands import solver_settings  # noqa: E402
from bolt.config import load_config, problem_from_config  # noqa: E402
from bolt.gibbs.herding import herd_field  # noqa: E402
from bolt.solve import solve  # noqa: E402


def grad_time(pb, fld, rows=40, reps=200):
    g = jax.jit(jax.grad(lambda w, f: pb.psi_field(w, f).sum()))
    w = 0.1 * jnp.ones((rows, pb.d))
    g(w, fld).block_until_ready()
    t = time.perf_counter()
    for _ in range(reps):
        w = w + 1e-9 * g(w, fld)
    w.block_until_ready()
    return (time.perf_counter() - t) / reps


def main():
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"jax {jax.__version__} (CPU), float64")
    cfg = load_config(None)
    pb = problem_from_config(cfg)
    st = dict(solver_settings(cfg), field_size=0, final_blocks=1)
    res = solve(pb, "picard-mala", seed=0, **st)
    fld = res.field
    X, a = fld.particles, fld.weights
    W = jnp.asarray(res.particles[::max(1, len(res.particles) // 2000)])
    full = pb.psi_field(W, fld)
    K = pb.kernel(W, X)
    noise = jnp.sqrt(jnp.mean((jnp.sum(K**2 * a[None, :], 1) - (K @ a) ** 2) * jnp.sum(a**2)))
    t_full = grad_time(pb, fld)
    print(f"buffer: {X.shape[0]} points; rms MC noise of Psi(w; mu_K): {float(noise):.2e}; "
          f"gradient at 40 rows: {t_full * 1e6:.0f} us")
    print(f"{'m':>5} {'MMD/noise':>9} {'herd rms':>9} {'herd max':>9} {'random rms':>10} {'grad us':>8} "
          f"{'speed-up':>8} {'herd ms':>8}")
    for m in (250, 500, 1000, 2000, 4000):
        herd_field(pb, fld, m)[0].particles.block_until_ready()
        t = time.perf_counter()
        nu, ratio = herd_field(pb, fld, m)
        nu.particles.block_until_ready()
        t_herd = time.perf_counter() - t
        err = np.asarray(pb.psi_field(W, nu) - full)
        idx = jax.random.choice(jax.random.PRNGKey(m), X.shape[0], (m,), p=a)
        rerr = np.asarray(pb.psi_field(W, pb.field(X[idx])) - full)
        tg = grad_time(pb, nu)
        print(f"{m:5d} {float(ratio):9.3f} {np.sqrt(np.mean(err**2)):9.2e} {np.max(np.abs(err)):9.2e} "
              f"{np.sqrt(np.mean(rerr**2)):10.2e} {tg * 1e6:8.0f} {t_full / tg:7.1f}x {t_herd * 1e3:8.0f}")


if __name__ == "__main__":
    main()
