"""Exact draws of Γ(µ) for a fixed µ: many independent MALA chains started near it.

Used where a solver's particles are not themselves draws of the Gibbs measure of a known field
(MFLD's particles interact with each other), and to draw more when a check needs a smaller error
bar. Each start point runs its own chain; the step size is adapted (Robbins–Monro on the mean
acceptance towards 0.574) in the first half and frozen in the second, so the final states are
draws of Γ(µ) (exact MALA: Metropolis-adjusted) that are independent given independent starts.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from bolt.problem.model import Field, Problem

__all__ = ["gibbs_draws", "GibbsDraws"]


class GibbsDraws(NamedTuple):
    """Final states ``(n, d)`` of the chains, their mean acceptance and the final step size."""

    draws: jax.Array
    accept: jax.Array
    step_size: jax.Array


def gibbs_draws(key, problem: Problem, fld: Field, init, *, n_steps: int = 200,
                target_accept: float = 0.574) -> GibbsDraws:
    r"""Run one MALA chain of Γ(µ) ∝ exp(−|w|²/(2τ) − (β/τ)Ψ(w; µ)) from each row of ``init``.

    Args:
      key: PRNG key.
      problem: the problem.
      fld: the :class:`~bolt.problem.Field` of µ (fixed).
      init: ``(n, d)`` start points (e.g. particles already close to Γ(µ)).
      n_steps: MALA steps per chain (half adapt the step size, half sample).

    Returns:
      :class:`GibbsDraws`.
    """
    W0 = jnp.asarray(init)
    tau = problem.tau

    def logp_grad(W):
        return problem.log_density(W, fld), problem.score(W, fld)

    adapt = n_steps // 2

    def step(carry, xs):
        W, lp, g, log_h, acc_sum = carry
        k, i = xs
        h = jnp.exp(log_h)
        k1, k2 = jax.random.split(k)
        mean_f = W + 0.5 * h * g
        Y = mean_f + jnp.sqrt(h) * jax.random.normal(k1, W.shape, W.dtype)
        lpy, gy = logp_grad(Y)
        mean_b = Y + 0.5 * h * gy
        log_r = lpy - lp - jnp.sum((W - mean_b) ** 2, -1) / (2 * h) + jnp.sum((Y - mean_f) ** 2, -1) / (2 * h)
        a = jnp.exp(jnp.minimum(log_r, 0.0))
        take = jax.random.uniform(k2, lp.shape, lp.dtype) < a
        W = jnp.where(take[:, None], Y, W)
        lp, g = jnp.where(take, lpy, lp), jnp.where(take[:, None], gy, g)
        rate = jnp.mean(a)
        log_h = jnp.where(i < adapt, log_h + (rate - target_accept) / jnp.sqrt(1.0 + i), log_h)
        acc_sum = acc_sum + jnp.where(i >= adapt, rate, 0.0)
        return (W, lp, g, log_h, acc_sum), None

    @jax.jit
    def run(key, W0):
        lp, g = logp_grad(W0)
        carry = (W0, lp, g, jnp.log(jnp.asarray(0.5 * tau, W0.dtype)), jnp.zeros((), W0.dtype))
        xs = (jax.random.split(key, n_steps), jnp.arange(n_steps))
        (W, _, _, log_h, acc), _ = jax.lax.scan(step, carry, xs)
        return W, acc / max(n_steps - adapt, 1), jnp.exp(log_h)

    W, acc, h = run(key, W0)
    return GibbsDraws(W, acc, h)
