"""Inner-sampler throughput (issue: speed, target 3): ns per kernel-gradient pair inside a Picard
iteration against the arithmetic floor on the same machine.

A "pair" is one (chain position, field atom) term of Ψ and ∇Ψ. On the default problem (d = 3,
erf, arcsine route) with a 1000-atom field — the herded field Picard samples from — this times:

- **floor**: Ψ and ∇Ψ at a batch of positions in one jitted call, both the analytic gradient
  (``Problem.grad_psi_field``) and the route NumPyro takes, reverse-mode autodiff of Ψ per position
  (``vmap(value_and_grad)``), at batches of 40 … 4096 rows; the floor is the fastest batch (large
  batches spill the cache);
- **in Picard**: the solver's own ``collect`` (:func:`bolt.gibbs.picard.inner_sampler`: NumPyro
  MALA, vectorised chains, ``draws × inner_steps`` steps in one jitted scan, warm-started after a
  warmup), one value-and-gradient per step, at the default 40 chains and at 400.

The ratio in-Picard / floor (autodiff) is what the issue's target 3 asks to bring within 3.

Usage: python studies/benchmarks/bench_inner.py [--smoke]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _best(fn, reps):
    import jax

    jax.block_until_ready(fn())  # compile
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes")
    args = ap.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from bolt.config import DEFAULT_CONFIG, problem_from_config
    from bolt.gibbs.picard import inner_sampler

    pb = problem_from_config(DEFAULT_CONFIG)
    m = 100 if args.smoke else 1000
    fld = pb.field(jnp.sqrt(pb.tau) * jax.random.normal(jax.random.PRNGKey(0), (m, pb.d)))
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
          f"jax {jax.__version__} ({jax.default_backend()}), float64; default problem, field of {m} atoms")
    analytic = jax.jit(lambda W: (pb.psi_field(W, fld), pb.grad_psi_field(W, fld)))
    autodiff = jax.jit(jax.vmap(jax.value_and_grad(lambda w: pb.psi_field(w[None], fld)[0])))
    t_an = t_ad = float("inf")
    for batch in ((8, 64) if args.smoke else (40, 64, 256, 1024, 4096)):
        W = 0.5 * jax.random.normal(jax.random.PRNGKey(1), (batch, pb.d))
        reps = max(5, 20_000 // batch)
        a = _best(lambda W=W: analytic(W), reps) / (batch * m) * 1e9
        b = _best(lambda W=W: autodiff(W), reps) / (batch * m) * 1e9
        t_an, t_ad = min(t_an, a), min(t_ad, b)
        print(f"batch {batch:>4}: analytic {a:6.2f} ns/pair, autodiff (NumPyro's route) {b:6.2f} ns/pair")
    print(f"floor (fastest batch): analytic {t_an:.2f} ns/pair, autodiff {t_ad:.2f} ns/pair")
    settings = {"step_size": 0.0, "adapt": True, "kernel": "mala"}
    scale = jnp.array([jnp.sqrt(pb.tau), pb.beta / pb.tau])
    for chains in ((8,) if args.smoke else (40, 400)):
        draws, inner = (2000 // chains if not args.smoke else 10), 5
        mcmc, collect = inner_sampler(pb, "mala", settings, chains=chains, draws=draws, inner_steps=inner,
                                      warmup=100 if args.smoke else 500)
        mcmc.warmup(jax.random.PRNGKey(2), fld, scale, init_params={"w": jnp.zeros((chains, pb.d))})
        state = mcmc.post_warmup_state
        keys = jax.random.split(jax.random.PRNGKey(3), chains)
        t = _best(lambda c=collect, s=state, k=keys: c(s, fld, scale, k), 3)
        pairs = chains * draws * inner * m
        ns = t / pairs * 1e9
        print(f"in Picard, {chains} chains x {draws} draws x {inner} steps: {t * 1e3:.1f} ms per block, "
              f"{ns:.2f} ns/pair = x{ns / t_ad:.1f} the autodiff floor, x{ns / t_an:.1f} the analytic floor",
              flush=True)


if __name__ == "__main__":
    main()
