"""The solvers' stopping tests: are draws a fixed point of Γ? (MATH.md §2)

Draws ``w_i`` of Γ(µ) are a fixed point when they are a sample of the Gibbs measure of their own
law. :func:`fixed_point_test` tests one half of the draws against the score of Γ(µ̂), µ̂ the
empirical measure of the other half, with the kernel Stein discrepancy
(:func:`~bolt.estimators.ksd.ksd_test`) and a null that carries µ̂'s Monte Carlo error.
:func:`field_drift_test` asks the first-order question the KSD test is weak at: would one more
Picard step move KL (and R) by more than the Monte Carlo error of the field and the draws?
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bolt.errors import BoltError
from bolt.estimators.control_variates import stein_error_series, stein_features, stein_weights
from bolt.estimators.ksd import KSDTest, block_multipliers, ksd_test
from bolt.problem.model import Field, Problem

__all__ = ["fixed_point_test", "field_drift_test", "DriftTest"]


def fixed_point_test(key, problem: Problem, chain_draws, *, field_weights_sq=0.0, max_tested: int = 1000,
                     max_field_noise: int = 2000, n_boot: int = 300, min_blocks: int = 20) -> KSDTest:
    """Test that draws ``(chain, draw, d)`` are a fixed point: do the draws of one half of the chains
    fit Γ(µ̂), µ̂ the empirical measure of the other half?

    The halves are independent, so the score of Γ(µ̂) differs from that of Γ(µ) only by µ̂'s own
    Monte Carlo error, ``−(β/τ) ∇Ψ(·; µ̂ − µ)``; :func:`~bolt.estimators.ksd.ksd_test` carries that
    error into its null through bootstrap replicates of it, so at a fixed point the p-value is
    uniform. Testing the draws against their *own* field, which contains them, without that error
    rejected exact draws of µ* about 20 % of the time at the 5 % level. One chain is split in time.

    The field's share: Picard's draws are of Γ(µ_k), µ_k itself a Monte Carlo estimate, µ* + δ. Their
    law is then ν = Γ(µ_k) ≈ µ* + Jδ (J the derivative of Γ), and the score the test uses is off by
    ``−(β/τ) ∇Ψ(·; µ_k − ν) = (β/τ) ∇Ψ(·; (I − J)δ)`` besides µ̂'s own error. ``field_weights_sq``
    (Σ a_i² of µ_k's draws, :func:`~bolt.gibbs.picard.field_weights_sq`; 0: the draws' field is
    exact, or, as MFLD's particles, not a Monte Carlo field) puts that error into the null too, with
    independent bootstrap replicates of δ (built on the other half's draws, variance scaled to
    Σ a_i²) and ``Jδ = −(β/τ)(Ψ(·; δ) − E_ν Ψ(·; δ)) ν`` (E_ν over the tested draws). Without it, on
    exact draws of Γ(µ_k) at Picard's default sizes (µ_k 1000 exact draws of µ*, 40 chains of 50;
    d = 1, β/τ = 16) the test rejected 16 % / 22 % of the time at the 5 % / 10 % levels; with it
    3 % / 8 % (100 replications; tests/test_stopping_calibration.py). With control-variate weights
    on µ_k's draws (Picard's ``field_cv``) δ is smaller than Σ a_i² says in the smooth directions,
    and the test is conservative there. The herding of µ_k (``field_size``) adds a little error of
    its own, not modelled.

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
    tested, fieldd = _halves(chain_draws)
    if tested.shape[0] * tested.shape[1] < 2:
        raise BoltError(f"the fixed-point test needs at least 4 draws (2 per half); got {C} chains of {n} "
                        f"(raise solver.particles)")
    sub = _thin(tested, max(2, min(int(max_tested), (1 << 24) // (d * n_boot))))
    X = sub.reshape(-1, d)
    k1, k2 = jax.random.split(key)
    noise = _field_noise(k2, problem, X, fieldd, n_boot, max_field_noise, min_blocks, field_weights_sq)
    return ksd_test(k1, X, problem.score(X, problem.field(fieldd.reshape(-1, d))), chains=sub.shape[0],
                    blocks=min_blocks, n_boot=n_boot, score_noise=noise)


def _field_noise(key, problem: Problem, X, fieldd, n_boot: int, max_field_noise: int, min_blocks: int,
                 field_weights_sq=0.0):
    """``n_boot`` bootstrap replicates ``(m, d, n_boot)`` of the score error ``−(β/τ) ∇Ψ(x; µ̂ − µ)`` at
    the rows of ``X``, µ̂ the draws ``fieldd`` ``(chain, draw, d)``: block multipliers on whole chains
    of at most ``max_field_noise`` of the draws, their variance scaled to that of all of them. With
    ``field_weights_sq`` > 0, plus independent replicates of the field's share
    ``(β/τ) ∇Ψ(x; (I − J)δ)`` (:func:`fixed_point_test`), δ on the same draws with variance scaled
    to Σ a_i² = ``field_weights_sq``."""
    d = fieldd.shape[2]
    W = fieldd.reshape(-1, d)
    thin = fieldd[:: max(1, -(-W.shape[0] // max_field_noise))]  # whole chains: their autocorrelation is kept
    V = thin.reshape(-1, d)
    bt = problem.beta / problem.tau

    def multipliers(k, var_scale):  # Σ_l (δ_{v_l} − µ̂) e_l per column, variance that of a mean over 1/var_scale
        e = block_multipliers(k, V.shape[0], n_boot, chains=thin.shape[0], blocks=min_blocks, gaussian=True,
                              dtype=W.dtype)
        return (e - jnp.mean(e, 0, keepdims=True)) * jnp.sqrt(var_scale / V.shape[0])

    # µ̂'s error Σ_l (δ_{w_l} − µ̂) e_l / n per column, on V (its variance scaled from |V| to |W| draws)
    noise = -bt * problem.kernel_grad_sums(X, V, multipliers(key, 1.0 / W.shape[0]))
    if isinstance(field_weights_sq, (int, float)) and field_weights_sq == 0:  # an exact field
        return noise
    c = multipliers(jax.random.fold_in(key, 1), jnp.asarray(field_weights_sq, W.dtype))  # δ: µ_k's error
    g = problem.kernel(X, V) @ c  # Ψ(x_j; δ) at the tested draws (δ has mass 0: no f̃ part)
    jd = (g - jnp.mean(g, 0, keepdims=True)) * (-bt / X.shape[0])  # Jδ = −(β/τ)(Ψ(·; δ) − E_ν Ψ(·; δ)) ν
    return noise + bt * (problem.kernel_grad_sums(X, V, c) - problem.kernel_grad_sums(X, X, jd))


class DriftTest(NamedTuple):
    """:func:`field_drift_test`: the standardised drift, its two-sided p-value, and ``kl_step``, the
    first-order change of KL that replacing the field by the draws would make."""

    z: jax.Array
    p_value: jax.Array
    kl_step: jax.Array


def _thin(chain_draws, cap: int):
    """At most about ``cap`` of the draws ``(chain, draw, d)``: every few draws of each chain, then every
    few chains (chains stay whole, so their autocorrelation structure is kept)."""
    per = -(-cap // chain_draws.shape[0])  # draws kept per chain
    sub = chain_draws[:, :: max(1, -(-chain_draws.shape[1] // per))]
    return sub[:: max(1, -(-sub.shape[0] * sub.shape[1] // cap))]


def _halves(chain_draws):
    C, n, _ = chain_draws.shape
    return (chain_draws[: C // 2], chain_draws[C // 2:]) if C >= 2 else (chain_draws[:, : n // 2],
                                                                          chain_draws[:, n // 2:])


def _var_of_mean(values, chains: int, min_blocks: int):
    """Variance of the mean of ``values`` (``chains`` consecutive chains of equal length).

    With at least ``min_blocks`` chains: batch means over whole chains, exact whatever the
    autocorrelation (the chains are independent). With fewer: the total variance times the
    integrated autocorrelation time over the number of draws, the time from the multi-chain
    autocorrelation (Stan's ``var⁺`` form) summed by Geyer's initial monotone positive sequence.
    (Batch means over blocks inside the chains rejected exact fixed points 17–22 % of the time at 5 %
    with 4 chains and a lag-one correlation near 0.9.)"""
    n = values.shape[0]
    per = n // chains
    if chains >= min_blocks or per < 4:
        means = values.reshape(chains, per).mean(1)
        return jnp.var(means, ddof=1) / chains if chains >= 2 else jnp.var(values, ddof=1) / n
    return jnp.var(values, ddof=1) * _autocorrelation_time(values.reshape(chains, per)) / n


def _autocorrelation_time(x):
    """Integrated autocorrelation time of chains ``x`` ``(chains, draws)``: Stan's (and ArviZ's
    ``ess(method="mean")`` before its chain split) — the multi-chain autocorrelation
    ``ρ_t = 1 − (W − acov_t)/var⁺`` with ``ρ_0 = 1``, summed in pairs by Geyer's initial monotone
    positive sequence, plus the even term of the first non-positive pair when it is positive, and at
    least 1/log10(draws). Jittable: the sequence's stopping point is found by masks, not a loop."""
    chains, per = x.shape
    xc = x - jnp.mean(x, 1, keepdims=True)
    m = 1 << (2 * per - 1).bit_length()
    f = jnp.fft.rfft(xc, n=m, axis=1)
    acov = jnp.mean(jnp.fft.irfft(f * jnp.conj(f), n=m, axis=1)[:, :per], 0) / per
    within = acov[0] * per / (per - 1.0)
    var_plus = acov[0] + (jnp.var(jnp.mean(x, 1), ddof=1) if chains > 1 else 0.0)
    rho = (1.0 - (within - acov) / var_plus).at[0].set(1.0)
    J = max((per - 1) // 2, 1)  # the pairs (ρ_2j, ρ_2j+1) Stan looks at: j = 0 and 2j ≤ per − 3
    pairs = rho[: 2 * J].reshape(J, 2).sum(1)
    j = jnp.arange(J)
    # L: the first pair that is not positive (Stan stops there), or the last one
    last = jnp.min(jnp.where((pairs <= 0) | (j == J - 1), j, J - 1))
    mono = jax.lax.cummin(pairs)  # the initial monotone sequence: each pair at most the one before
    even = rho[2 * last]
    # the first non-positive pair's even term is added when positive; a pair Stan kept (its sum ≥ 0,
    # reached when it ran out of lags) adds it whatever its sign
    extra = jnp.where((even > 0) | ((last >= 1) & (pairs[last] >= 0)), even, 0.0)
    tau = -1.0 + 2.0 * jnp.sum(jnp.where(j < last, mono, 0.0)) + extra
    tau = jnp.maximum(tau, 1.0 / math.log10(chains * per))
    return jnp.where(var_plus > 0, tau, 1.0)  # constant draws: ArviZ's ESS is their number


def field_drift_test(problem: Problem, chain_draws, field: Field, field_weights_sq, *, cv_degree: int = 0,
                     min_blocks: int = 20, max_draws: int = 8000) -> DriftTest:
    r"""Has the field stopped moving in the direction that moves KL and R?

    ``chain_draws`` ``(chain, draw, d)`` are draws of Γ(µ), µ given by ``field``. For ν = Γ(µ), a
    change δ of the field moves ``KL(ν‖γ_τ)`` by ``(β/τ)² ∫ g dδ`` (and, near the fixed point, R by
    ``−2(β/τ) ∫ g dδ`` and F by nothing), ``g(v) = Cov_{W∼ν}(Ψ(W; µ), K(W, v))``. One undamped Picard step replaces µ by
    the draws ν̂, so ``D = ∫ g d(ν̂ − µ) = Cov_{W∼ν}(Ψ(W; µ), Ψ(W; ν̂) − Ψ(W; µ))`` is what that step
    would do to KL, in the statistic ``kl_step = (β/τ)² D``. Cross-fitted: ``g`` (the covariance) is
    taken over one half of the chains and ν̂ is the other half, both ways round, and the two are
    averaged.

    Null: at a fixed point µ_k is µ* plus its own Monte Carlo error δ, the draws' law is
    ν = Γ(µ_k) ≈ µ* + Jδ (J the derivative of Γ), and ν̂ adds the draws' error ε. So
    ``D = ∫ (J*g − g) dδ + ∫ g dε`` has mean 0 and variance
    ``Σ a_i² · (n/ESS) · Var(J*g − g) + (n/ESS) · Var(g) / n``: the field's noise (``field_weights_sq``
    = Σ a_i² of the draws µ_k averages, as the estimators' field error bar takes it) fed back
    through Γ, and the draws' own. ``J*g(v) = −(β/τ) Cov_{W∼ν}(g(W), K(W, v))``; without it (taking
    ``Γ(µ_k) = µ*``) the test rejected exact fixed points 12–17 % of the time at 5 % in d = 1.
    ``Var(·)·n/ESS`` is estimated by batch means over whole chains when a half has at least
    ``min_blocks`` of them, else from the chains' integrated autocorrelation time
    (:func:`_var_of_mean`). ``z = D / sd`` and a two-sided normal p-value. At most about
    ``max_draws`` draws are used (:func:`_thin`), and ``n`` is the number used.

    The test is linear in the field's error where the KSD test (:func:`fixed_point_test`) is
    quadratic: it sees a transient of the damped iteration that still biases KL by several standard
    errors, which the KSD test at these sample sizes does not.

    With ``cv_degree > 0`` the field's blocks carry Stein control-variate weights
    (:func:`~bolt.gibbs.picard.block_weights`): ν̂ is weighted the same way (with the score of Γ(µ)
    at its draws) and both variances are those of the functions' control-variate error series at the
    draws (:func:`~bolt.estimators.control_variates.stein_error_series`: the residuals after
    regression on the Stein images, with leverage), the error such weights leave. The covariance's
    own sampling error over the half it is taken on (second order) is in the variance too.
    """
    d = chain_draws.shape[2]
    chain_draws = _thin(chain_draws, max_draws)  # the halves' kernel matrices are at most (max_draws/2)²
    A, B = _halves(chain_draws)
    bt = problem.beta / problem.tau
    parts = []
    for G, E in ((A, B), (B, A)):
        Gf, Ef = G.reshape(-1, d), E.reshape(-1, d)
        m = Gf.shape[0]
        psi = problem.psi_field(Gf, field)
        c = psi - jnp.mean(psi)
        H = stein_features(Ef, problem.score(Ef, field), cv_degree) if cv_degree else None
        resid = (lambda v, H=H: stein_error_series(v, H)) if cv_degree else (lambda v: v)
        nu = problem.field(Ef, stein_weights(H)) if cv_degree else problem.field(Ef)
        shift = problem.psi_field(Gf, nu) - psi
        D = jnp.dot(c, shift) / (m - 1)
        g_G = c @ problem.kernel(Gf, Gf) / (m - 1)  # g on G's draws, for J*g
        K_GE = problem.kernel(Gf, Ef)
        g = c @ K_GE / (m - 1)  # g on E's draws (c is centred)
        jg = -bt * ((g_G - jnp.mean(g_G)) @ K_GE) / (m - 1)  # J*g on E's draws
        n_e = Ef.shape[0]
        # the covariance's own sampling error over G given the shift: second order (a few per cent of
        # the variance with the blocks' control-variate weights, negligible without)
        v_cov = _var_of_mean(c * (shift - jnp.mean(shift)), G.shape[0], min_blocks)
        parts.append((D, _var_of_mean(resid(jg - g), E.shape[0], min_blocks) * n_e,
                      _var_of_mean(resid(g), E.shape[0], min_blocks) * n_e, v_cov))
    D = 0.5 * (parts[0][0] + parts[1][0])
    v_field = 0.5 * (parts[0][1] + parts[1][1])  # Var(J*g − g)·n/ESS per draw
    v_draws = 0.5 * (parts[0][2] + parts[1][2])  # Var(g)·n/ESS per draw
    v_cov = 0.25 * (parts[0][3] + parts[1][3])
    n = chain_draws.shape[0] * chain_draws.shape[1]
    sd = jnp.sqrt(v_field * field_weights_sq + v_draws / n + v_cov)
    z = D / sd
    return DriftTest(z, jax.scipy.special.erfc(jnp.abs(z) / jnp.sqrt(2.0)), bt**2 * D)
