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

from bolt.errors import BoltError
from bolt.estimators.ksd import KSDTest, block_multipliers, ksd_test
from bolt.problem.model import Problem

__all__ = ["fixed_point_test"]


def fixed_point_test(key, problem: Problem, chain_draws, *, max_tested: int = 1000, max_field_noise: int = 2000,
                     n_boot: int = 300, min_blocks: int = 20) -> KSDTest:
    """Test that draws ``(chain, draw, d)`` are a fixed point: do the draws of one half of the chains
    fit Γ(µ̂), µ̂ the empirical measure of the other half?

    The halves are independent, so the score of Γ(µ̂) differs from that of Γ(µ) only by µ̂'s own
    Monte Carlo error, ``−(β/τ) ∇Ψ(·; µ̂ − µ)``; :func:`~bolt.estimators.ksd.ksd_test` carries that
    error into its null through bootstrap replicates of it, so at a fixed point the p-value is
    uniform. Testing the draws against their *own* field, which contains them, without that error
    rejected exact draws of µ* about 20 % of the time at the 5 % level. One chain is split in time.

    Autocorrelation: both halves use block multipliers (:func:`~bolt.estimators.ksd.block_multipliers`),
    one per block of consecutive draws of a chain, with at least ``min_blocks`` blocks per half
    (whole chains when there are that many, which is exact whatever the autocorrelation; otherwise
    chains are cut into equal blocks, which must be much longer than the autocorrelation time).

    Independent draws (MFLD's particles) are passed as ``(n, 1, d)``. MFLD's particles interact, so
    its two halves are not independent: the tested half has already felt part of the other half's
    noise, and the test is conservative there (p-values above uniform at a fixed point).

    At most ``max_tested`` draws of the tested half are used (every few draws of each chain, then
    every few chains), fewer when ``d`` is large (the replicates hold ``tested × d × n_boot``
    numbers, at most 2²⁴); µ̂ is the whole other half, and its error's replicates are built on whole
    chains of at most ``max_field_noise`` of its draws (scaled to the same variance).
    """
    C, n, d = chain_draws.shape
    if C >= 2:
        tested, fieldd = chain_draws[: C // 2], chain_draws[C // 2:]
    else:
        tested, fieldd = chain_draws[:, : n // 2], chain_draws[:, n // 2:]
    if tested.shape[0] * tested.shape[1] < 2:
        raise BoltError(f"the fixed-point test needs at least 4 draws (2 per half); got {C} chains of {n} "
                        f"(raise solver.particles)")
    max_tested = max(2, min(int(max_tested), (1 << 24) // (d * n_boot)))
    per = -(-max_tested // tested.shape[0])  # draws kept per chain
    sub = tested[:, :: max(1, -(-tested.shape[1] // per))]
    sub = sub[:: max(1, -(-sub.shape[0] * sub.shape[1] // max_tested))]
    X = sub.reshape(-1, d)
    k1, k2 = jax.random.split(key)
    noise = _field_noise(k2, problem, X, fieldd, n_boot, max_field_noise, min_blocks)
    return ksd_test(k1, X, problem.score(X, problem.field(fieldd.reshape(-1, d))), chains=sub.shape[0],
                    blocks=min_blocks, n_boot=n_boot, score_noise=noise)


def _field_noise(key, problem: Problem, X, fieldd, n_boot: int, max_field_noise: int, min_blocks: int):
    """``n_boot`` bootstrap replicates ``(m, d, n_boot)`` of the score error ``−(β/τ) ∇Ψ(x; µ̂ − µ)`` at
    the rows of ``X``, µ̂ the draws ``fieldd`` ``(chain, draw, d)``: block multipliers on whole chains
    of at most ``max_field_noise`` of the draws, their variance scaled to that of all of them."""
    d = fieldd.shape[2]
    W = fieldd.reshape(-1, d)
    thin = fieldd[:: max(1, -(-W.shape[0] // max_field_noise))]  # whole chains: their autocorrelation is kept
    V = thin.reshape(-1, d)
    e = block_multipliers(key, V.shape[0], n_boot, chains=thin.shape[0], blocks=min_blocks, gaussian=True,
                          dtype=W.dtype)
    # µ̂'s error Σ_l (δ_{w_l} − µ̂) e_l / n per column, on V (its variance scaled from |V| to |W| draws)
    e = (e - jnp.mean(e, 0, keepdims=True)) / math.sqrt(V.shape[0] * W.shape[0])
    return -(problem.beta / problem.tau) * problem.kernel_grad_sums(X, V, e)
