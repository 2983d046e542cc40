"""The solvers' stopping test: are draws a fixed point of Γ? (MATH.md §2)

Draws ``w_i`` of Γ(µ) are a fixed point when they are a sample of the Gibbs measure of their own
law. :func:`fixed_point_test` tests one half of the draws against the score of Γ(µ̂), µ̂ the
empirical measure of the other half, with the kernel Stein discrepancy
(:func:`~bolt.estimators.ksd.ksd_test`) and a null that carries µ̂'s Monte Carlo error.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from bolt.estimators.ksd import KSDTest, chain_multipliers, ksd_test
from bolt.problem.model import Problem

__all__ = ["fixed_point_test"]


def fixed_point_test(key, problem: Problem, chain_draws, *, max_tested: int = 1000, max_field_noise: int = 2000,
                     n_boot: int = 300) -> KSDTest:
    """Test that draws ``(chain, draw, d)`` are a fixed point: do the draws of one half of the chains
    fit Γ(µ̂), µ̂ the empirical measure of the other half?

    The halves are independent, so the score of Γ(µ̂) differs from that of Γ(µ) only by µ̂'s own
    Monte Carlo error, ``−(β/τ) ∇Ψ(·; µ̂ − µ)``; :func:`~bolt.estimators.ksd.ksd_test` carries that
    error into its null through bootstrap replicates of it (multipliers on the field's draws: AR(1)
    within chains, as for the tested draws), so at a fixed point the p-value is uniform. Testing the
    draws against their *own* field, which contains them, without that error rejected exact draws
    of µ* about 20 % of the time at the 5 % level. One chain is split in time; independent draws
    (MFLD's particles) are passed as ``(n, 1, d)``.

    At most ``max_tested`` draws of the tested half are used (every few draws of each chain, then
    every few chains); µ̂ is the whole other half, and its error's replicates are built on at most
    ``max_field_noise`` of its draws (scaled to the same variance).
    """
    C, n, d = chain_draws.shape
    if C >= 2:
        tested, fieldd = chain_draws[: C // 2], chain_draws[C // 2:]
    else:
        tested, fieldd = chain_draws[:, : n // 2], chain_draws[:, n // 2:]
    per = -(-max_tested // tested.shape[0])  # draws kept per chain
    sub = tested[:, :: max(1, -(-tested.shape[1] // per))]
    sub = sub[:: max(1, -(-sub.shape[0] * sub.shape[1] // max_tested))]
    X = sub.reshape(-1, d)
    W = fieldd.reshape(-1, d)
    k1, k2 = jax.random.split(key)
    thin = fieldd[:: max(1, -(-W.shape[0] // max_field_noise))]  # whole chains: their autocorrelation is kept
    V = thin.reshape(-1, d)
    e = chain_multipliers(k2, V.shape[0], n_boot, chains=thin.shape[0], correlation=_correlation(thin), dtype=W.dtype)
    # µ̂'s error Σ_l (δ_{w_l} − µ̂) e_l / n per column, on V (its variance scaled from |V| to |W| draws)
    e = (e - jnp.mean(e, 0, keepdims=True)) / math.sqrt(V.shape[0] * W.shape[0])
    noise = -(problem.beta / problem.tau) * problem.kernel_grad_sums(X, V, e)
    return ksd_test(k1, X, problem.score(X, problem.field(W)), chains=sub.shape[0], correlation=_correlation(sub),
                    n_boot=n_boot, score_noise=noise)


def _correlation(chains_draws):
    """The multipliers' lag-one correlation for draws ``(chain, draw, d)``; ``None`` (independent draws)
    for one draw per chain."""
    return None if chains_draws.shape[1] < 2 else _lag_one(chains_draws)


def _lag_one(chains_draws):
    """Lag-one autocorrelation of MCMC draws ``(chain, draw, d)``: the largest over coordinates,
    clipped to ``[0, 0.95]`` (the Markov-chain wild bootstrap's multiplier correlation)."""
    x = chains_draws - jnp.mean(chains_draws, 1, keepdims=True)
    num = jnp.sum(x[:, 1:] * x[:, :-1], (0, 1))
    den = jnp.sum(x * x, (0, 1))
    return jnp.clip(jnp.max(num / den), 0.0, 0.95)


