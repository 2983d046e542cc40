"""Damped Picard iteration µ_{k+1} = (1 − α) µ_k + α Γ(µ_k) with a NumPyro inner sampler.

Γ(µ_k) ∝ exp(−|w|²/(2τ) − (β/τ) Ψ(w; µ_k)) is sampled by NUTS (``picard-nuts``) or by
:class:`~bolt.gibbs.mala.MALA` (``picard-mala``; ULA as an option) with several vectorised chains.
µ_k enters the NumPyro model as *data* (its :class:`~bolt.problem.Field`, fixed shape) and the
``MCMC`` object is built with ``jit_model_args=True``, so the sampler compiles once for the whole
solve. Chains are warm-started: iteration 0 runs warmup from γ_τ draws; later iterations continue
from the previous chains' last state (positions, step size, mass matrix).

Stopping: the residual is the squared kernel Stein discrepancy (signed U-statistic) of the draws of
half of the chains against the score of Γ(µ̂), ``s(w) = −w/τ − (β/τ)∇Ψ(w; µ̂)``, µ̂ the draws of the
other half (MATH.md §2; :func:`~bolt.gibbs.stopping.fixed_point_test`), tested against its own null
distribution (a wild bootstrap with one multiplier per block of consecutive draws, which also
carries µ̂'s Monte Carlo error and that of µ_k itself fed through Γ,
:func:`~bolt.estimators.ksd.ksd_test`). Statistic and null scale together with the score, so the
rule is the same at every β and τ. The KSD is quadratic in the field's error and weak against a
slow transient of the damped iteration, so a second, linear test
(:func:`~bolt.gibbs.stopping.field_drift_test`) asks whether replacing µ_k by its draws would move
KL by more than the Monte Carlo error of µ_k (Σ a_i², :func:`field_weights_sq`) and of the draws.
The solve has converged when both p-values are at least ``tolerance`` in two successive iterations
and, with ``final_blocks > 1``, the drift test on all the final draws passes too.
The trace also records the KSD's noise floor (the null's 95 % quantile) and p-value, the drift's z,
p-value and ``kl_step`` (the KL change that step would make), the sliced W2 between successive
draws, the risk, KL and free energy, the acceptance and the herded field's error
(``field_mmd_ratio``). An iteration
whose mean acceptance fell below 0.1 (the chains froze as Γ(µ_k) sharpened) is followed by a new
warmup.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from operator import attrgetter

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

from bolt._faults import fault_point
from bolt.errors import BoltError
from bolt.estimators.control_variates import default_degree, stein_features, stein_weights
from bolt.gibbs._progress import count_compilations, progress
from bolt.gibbs.herding import block_gram, herd_field, update_block_gram
from bolt.gibbs.mala import MALA
from bolt.gibbs.result import SolveResult
from bolt.gibbs.sharding import constrain_rows, row_sharding
from bolt.gibbs.stopping import field_drift_test, fixed_point_test
from bolt.problem.model import Field, Problem
from bolt.transport.w2 import w2_sliced

__all__ = ["solve_picard", "gibbs_model", "check_resume_iteration"]

TRACE_KEYS = ("residual", "residual_floor", "p_value", "drift_z", "drift_p_value", "kl_step", "w2_successive",
              "risk", "kl", "log_z", "free_energy", "accept_prob", "field_mmd_ratio")


def gibbs_model(problem: Problem):
    """The NumPyro model of Γ(µ): prior ``N(0, τI)`` and factor ``−(β/τ) Ψ(w; µ)``; µ is an argument.

    Call as ``model(field, scale)`` where ``scale = [sqrt(τ), β/τ]`` (traced, so β and τ may change
    without recompiling).
    """
    d = problem.d

    def model(fld: Field, scale):
        w = numpyro.sample("w", dist.Normal(jnp.zeros(d), scale[0]).to_event(1))
        numpyro.factor("psi", -scale[1] * problem.psi_field(w[None, :], fld)[0])

    return model


def _kernel(problem: Problem, inner: str, settings: dict):
    model = gibbs_model(problem)

    step = settings["step_size"] or (0.5 if inner == "nuts" else 0.1)
    if inner == "nuts":
        return NUTS(model, step_size=step, adapt_step_size=settings["adapt"], adapt_mass_matrix=settings["adapt"])
    return MALA(model, step_size=step, adjusted=settings["kernel"] == "mala",
                adapt_step_size=settings["adapt"], adapt_mass_matrix=settings["adapt"])


def field_weights_sq(route: str, damping: float, particles: int, buffer: int, mixes: int) -> float:
    """``Σ a_i²`` of the field µ_k after ``mixes`` damped updates of µ_0 (one block of ``particles``
    prior draws), following :meth:`~bolt.problem.Problem.mix`: each update gives the new block weight α
    and scales the others by ``1 − α``; on the arcsine route only the last ``buffer`` blocks are kept
    (µ_0's copies leave one by one) and the weights renormalised after each drop, which leaves them
    flatter than ``α(1 − α)^j``. µ_0's copies count as one block. The Monte Carlo variance of
    ``∫ g dµ_k`` is ``Var(g)`` times this (for independent draws; the variance of ``g``'s Stein
    residual when the blocks carry control-variate weights, :func:`block_weights`)."""
    a, k = float(damping), int(mixes)
    if a >= 1.0 or k == 0:
        return 1.0 / particles
    if route == "arcsine":
        w, prior = np.full(buffer, 1.0 / buffer), np.ones(buffer, bool)
        for _ in range(k):
            w = np.concatenate([[a], (1.0 - a) * w[:-1]])
            prior = np.concatenate([[False], prior[:-1]])
            w = w / w.sum()
        blocks = np.concatenate([w[~prior], [w[prior].sum()]])
    else:
        blocks = np.concatenate([a * (1.0 - a) ** np.arange(k), [(1.0 - a) ** k]])
    return float(np.sum(blocks**2) / particles)


def _initial_field(key, problem: Problem, n: int, buffer: int, cv_degree: int = 0) -> Field:
    """µ_0 = ``n`` draws of γ_τ (with their Stein weights, :func:`block_weights`); on the arcsine route
    the same block fills every block of the buffer (so its herding sums cost one ``n²`` pass, not
    ``(buffer · n)²``)."""
    prior = jnp.sqrt(problem.tau) * jax.random.normal(key, (n, problem.d))
    wts = block_weights(prior, -prior / problem.tau, cv_degree)
    if problem.route == "arcsine":
        return problem.field(jnp.tile(prior, (buffer, 1)), jnp.tile(wts, buffer) / buffer)
    return problem.field(prior, wts)


def field_cv_degree(d: int, particles: int) -> int:
    """The degree of the field's control-variate monomials: that of
    :func:`~bolt.estimators.control_variates.default_degree`, at most 2. The weights' coefficients are
    fitted on half a block (cross-fitted); with degree 3 their leverage made the error wider than its
    estimate (the drift test's z had sd 1.22 at β/τ = 16 with blocks of 250 draws, 1.03 with degree 2;
    the drift test fits them on half of one half of the chains, ~55 rows a feature on the default
    problem, ~62 in that calibration)."""
    return min(default_degree(d, particles), 2)


def block_weights(draws, scores, cv_degree: int):
    """The weights a block of draws enters the field with: equal, or with ``cv_degree > 0`` the Stein
    control-variate weights (:func:`~bolt.estimators.control_variates.stein_weights`) of the monomials up
    to that degree, given the score of the law the draws were sampled from. They sum to 1 and
    integrate every Stein image to zero, so ``∫ g dµ`` of the block has the error of ``g``'s residual
    after regression on those images instead of ``g``'s own (~20× smaller in variance for the
    field-noise directions of the default problem)."""
    if not cv_degree:
        return jnp.full((draws.shape[0],), 1.0 / draws.shape[0], draws.dtype)
    return stein_weights(stein_features(draws, scores, cv_degree))


def inner_sampler(problem: Problem, inner: str, settings: dict, *, chains: int, draws: int, inner_steps: int,
                  warmup: int, sharding=None, progress_bar: bool = False):
    """Picard's inner sampler: NumPyro's ``MCMC`` (for the warmup) and ``collect``, the jitted scan that
    draws every iteration's block.

    ``collect(state, field, scale, keys)`` runs ``draws × inner_steps`` kernel steps of the
    vectorised chains from ``state`` (an ``MCMC.post_warmup_state``) against Γ(field), keeping every
    ``inner_steps``-th, and returns the new state and ``(chain, draw, ...)`` outputs: ``w`` and the
    kernel's statistics. ``scale = [sqrt(τ), β/τ]``. ``settings`` holds ``step_size``, ``adapt``
    and ``kernel`` as :func:`solve_picard` takes them.
    """
    # NumPyro's driver runs the warmup (adaptation, vectorised chains); the draws of every iteration
    # then come from one jitted scan over the kernel's own `sample`, with µ_k as an argument.
    # (MCMC.run re-traces its collection loop on every call, because its loop body is a new
    # closure each time; this scan is traced once per solve.)
    mcmc = MCMC(_kernel(problem, inner, settings), num_warmup=max(warmup, 1), num_samples=draws,
                num_chains=chains, chain_method="vectorized", progress_bar=progress_bar, jit_model_args=True)
    sampler = mcmc.sampler
    extra = (("potential_energy", "energy", "diverging", "num_steps", "accept_prob", "adapt_state.step_size")
             if inner == "nuts" else ("potential_energy", "diverging", "accept_prob", "adapt_state.step_size"))
    getters = {name: attrgetter(name) for name in extra}

    @jax.jit
    def collect(state, fld, scale, keys):
        """``draws`` kept draws (``inner_steps`` kernel steps each) from ``state``; (chain, draw, ...) outputs."""
        # NumPyro keeps a single chain's state unbatched: one key, and no chain axis to move
        state = _shard_chains(state._replace(rng_key=keys if chains > 1 else keys[0]), sharding, chains)

        def body(st, _):
            st = jax.lax.fori_loop(0, inner_steps, lambda i, s: sampler.sample(s, (fld, scale), {}), st)
            return st, {"w": st.z["w"], **{n: g(st) for n, g in getters.items()}}

        state, out = jax.lax.scan(body, state, None, length=draws)
        return state, jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1) if chains > 1 else a[None], out)

    return mcmc, collect


def solve_picard(key, problem: Problem, *, inner: str = "nuts", particles: int = 2000, chains: int = 4,
                 damping: float = 0.7, tolerance: float = 0.05, max_iterations: int = 30, min_iterations: int = 4,
                 warmup: int = 500, inner_steps: int = 1, step_size: float = 0.0, adapt: bool = True,
                 kernel: str = "mala", buffer: int = 4, logz_samples: int = 4096, final_blocks: int = 1,
                 field_size: int = 0, field_cv: bool = True, devices: int = 1, checkpoint=None,
                 on_iteration=None, progress_bar: bool | None = None) -> SolveResult:
    """Solve µ* = Γ(µ*) by damped Picard iteration with a NumPyro inner sampler.

    Args:
      key: JAX PRNG key (iteration ``k`` uses ``fold_in(key, k)``, so a resumed solve repeats exactly).
      problem: the :class:`~bolt.problem.Problem`.
      inner: ``"nuts"`` or ``"mala"``.
      particles: draws of Γ(µ_k) per iteration (``chains × particles/chains``).
      chains: vectorised chains.
      damping: α in (0, 1].
      tolerance: significance level of the stopping tests: stop when the KSD test's and the drift
        test's p-values are both at least ``tolerance`` in two successive iterations (after
        ``min_iterations``).
      max_iterations: iteration cap; ``converged`` is False when it is hit first.
      warmup: warmup steps of the first inner run, and of a new adaptation whenever an iteration's
        mean acceptance fell below 0.1 (the chains froze as Γ(µ_k) sharpened).
      inner_steps: MCMC steps per kept draw (thinning) in every inner run.
      step_size: initial inner step size (0: the kernel's default).
      adapt: adapt step size and diagonal mass matrix in warmup.
      kernel: ``"mala"`` or ``"ula"`` for ``inner="mala"``.
      buffer: on the arcsine route µ_k is kept as the last ``buffer`` blocks of draws (see
        :meth:`~bolt.problem.Problem.mix`).
      logz_samples: prior draws for the per-iteration log Z (trace only).
      field_size: on the arcsine route, sample Γ(µ_k) with µ_k's buffer herded to this many points
        (:func:`~bolt.gibbs.herding.herd_field`; the trace's ``field_mmd_ratio`` is the herding
        error over the buffer's own Monte Carlo noise); 0 keeps the whole buffer. The result's
        ``field`` is the herded field its draws were sampled from.
      field_cv: each block of draws enters µ with Stein control-variate weights (:func:`block_weights`,
        monomials up to :func:`field_cv_degree`) instead of equal ones: the field's Monte Carlo
        error in the directions that move KL and R shrinks (on the default problem the field's share
        of KL's error bar fell from 0.0019 to about 0.0005). The degree is
        ``settings["field_cv_degree"]`` (0: off).
      final_blocks: blocks of ``particles`` draws of the final Γ(µ_K) in the result. Once the
        stopping rule is met the chains continue with the same µ_K for ``final_blocks − 1`` more
        blocks, so the estimators downstream have proportionally more effective draws at the cost
        of sampling alone (nothing recompiled). The drift test then runs again on all of them
        (``settings["final_drift_z"]``, ``["final_drift_p_value"]``, ``["final_checks"]``): they
        resolve a transient several times smaller than one iteration's draws can, and when it
        rejects the final draws are dropped and the iteration goes on until the rule and this check
        both pass (or ``max_iterations``: then ``converged`` is False).
      devices: split the vectorised chains over this many devices after the warmup (0: all of
        ``jax.devices()``; 1: no sharding); ``chains`` must be a multiple of the count.
      checkpoint: a dict from ``on_iteration`` to resume from.
      on_iteration: callback ``(k, checkpoint_dict)`` after each completed iteration.
      progress_bar: show bars for the Picard iterations and the NumPyro warmup (default: when
        stderr is a terminal).

    Returns:
      :class:`~bolt.gibbs.result.SolveResult`.
    """
    if inner not in ("nuts", "mala"):
        raise BoltError(f"solver.method: unknown inner sampler {inner!r}")
    if particles % chains:
        raise BoltError(f"solver.particles: {particles} is not a multiple of solver.chains = {chains}")
    if max_iterations < 1:
        raise BoltError(f"solver.max_iterations: must be at least 1, got {max_iterations}")
    settings = dict(method=f"picard-{inner}", particles=particles, chains=chains, damping=damping,
                    tolerance=tolerance, max_iterations=max_iterations, min_iterations=min_iterations,
                    warmup=warmup, inner_steps=inner_steps, step_size=step_size, adapt=adapt, kernel=kernel,
                    buffer=buffer, logz_samples=logz_samples, final_blocks=final_blocks, field_size=field_size,
                    field_cv=bool(field_cv))
    cv_degree = field_cv_degree(problem.d, particles) if field_cv else 0
    settings["field_cv_degree"] = cv_degree
    draws = particles // chains
    sharding = row_sharding(devices, chains, what="solver.chains")
    settings["devices"] = 1 if sharding is None else sharding.num_devices
    show = sys.stderr.isatty() if progress_bar is None else bool(progress_bar)
    mcmc, collect = inner_sampler(problem, inner, settings, chains=chains, draws=draws, inner_steps=inner_steps,
                                  warmup=warmup, sharding=sharding, progress_bar=show)
    sampler = mcmc.sampler
    scale = jnp.array([np.sqrt(problem.tau), problem.beta / problem.tau])

    bt = problem.beta / problem.tau

    @jax.jit
    def diagnose(samples, fld, sfld, key, weights_sq):
        """KSD and drift tests, log Z (plain MC, trace only), KL, risk of the new draws, and the mixed
        field (``fld`` is µ_k's buffer, ``sfld`` the field the draws were sampled from, ``weights_sq``
        µ_k's Σ a_i²)."""
        new = problem.field(samples, block_weights(samples, problem.score(samples, sfld) if cv_degree else None,
                                                   cv_degree))
        # the null carries µ_k's own Monte Carlo error (Σ a_i² = weights_sq) as well as the other half's
        residual = fixed_point_test(jax.random.fold_in(key, 3), problem, samples.reshape(chains, draws, problem.d),
                                    field_weights_sq=weights_sq)
        drift = field_drift_test(problem, samples.reshape(chains, draws, problem.d), sfld, weights_sq,
                                 cv_degree=cv_degree)  # the field's blocks carry control-variate weights
        prior = jnp.sqrt(problem.tau) * jax.random.normal(key, (logz_samples, problem.d), samples.dtype)
        ell = -bt * problem.psi_field(prior, sfld)
        lz = jax.scipy.special.logsumexp(ell) - jnp.log(logz_samples)
        kl = -bt * jnp.mean(problem.psi_field(samples, sfld)) - lz
        risk = problem.risk(samples, unbiased=True)
        nxt = problem.mix(fld, new, damping) if (damping < 1.0 or problem.route == "expectation") \
            else _replace_all(fld, new)
        return residual, drift, lz, kl, risk, nxt

    @jax.jit
    def final_check(chain_draws, fld, weights_sq):
        """The drift test on all the final draws (one program, not op by op)."""
        return field_drift_test(problem, chain_draws, fld, weights_sq, cv_degree=cv_degree)

    if checkpoint is None:
        loop = _Loop(fld=_initial_field(jax.random.fold_in(key, 10_000_019), problem, particles, buffer, cv_degree),
                     init=jnp.sqrt(problem.tau) * jax.random.normal(jax.random.fold_in(key, 10_000_020),
                                                                    (chains, problem.d)))
        trace, start_k, stage = {k: [] for k in TRACE_KEYS}, 0, 0
    else:
        check_resume_iteration(checkpoint["iteration"], max_iterations)
        loop, trace, start_k, stage = _restore(checkpoint, chains, problem.d)
        # the sampler state's structure, from a template: any field of the sampled field's shapes
        m = field_size if problem.route == "arcsine" and 0 < field_size < loop.fld.particles.shape[0] else 0
        like = Field(loop.fld.particles[:m], jnp.full((m,), 1.0 / m, loop.fld.weights.dtype),
                     loop.fld.fhat) if m else loop.fld
        z0 = jnp.zeros((chains, problem.d)) if chains > 1 else jnp.zeros((problem.d,))
        template = sampler.init(jax.random.split(key, chains) if chains > 1 else key, max(warmup, 1), {"w": z0},
                                (like, scale), {})
        leaves = [jnp.asarray(checkpoint[f"mcmc_{i}"]) for i in range(int(checkpoint["mcmc_leaves"]))]
        loop.state = jax.tree.unflatten(jax.tree.structure(template), leaves)

    # herding's kernel sums µK over the buffer, kept current block by block (a quarter of the n² pass
    # per iteration at 4 blocks); a resumed solve takes them from the checkpoint, so it repeats exactly
    incremental = (problem.route == "arcsine" and 0 < field_size < loop.fld.particles.shape[0] and damping < 1.0
                   and loop.fld.particles.shape[0] == buffer * particles)
    if incremental:
        saved = checkpoint.get("herd_gram") if checkpoint is not None else None
        if saved is not None and np.shape(saved) == (loop.fld.particles.shape[0], buffer):
            loop.gram = jnp.asarray(saved)
        elif checkpoint is None:  # µ_0's blocks are one block repeated
            first = problem.field(loop.fld.particles[:particles], loop.fld.weights[:particles] * buffer)
            loop.gram = jnp.tile(block_gram(problem, first, 1), (buffer, buffer))
        else:
            loop.gram = block_gram(problem, loop.fld, buffer)

    def stopped(k):
        """The stopping rule after iteration k: a fixed point when the draws pass the fixed-point test
        (:func:`~bolt.gibbs.stopping.fixed_point_test`) and the drift test
        (:func:`~bolt.gibbs.stopping.field_drift_test`) twice running."""
        return (k + 1 >= max(min_iterations, 2) and min(trace["p_value"][-2:]) >= tolerance
                and min(trace["drift_p_value"][-2:]) >= tolerance)

    compiles = []

    def iterate(k):
        """Iteration k: sample Γ(µ_k), test and record the draws, and mix them into µ_{k+1}."""
        kk = jax.random.fold_in(key, k)
        prev = loop.chain_draws
        if loop.init is None and adapt and prev is not None and trace["accept_prob"] \
                and trace["accept_prob"][-1] < 0.1:
            # the chains froze (Γ(µ_k) sharpened past the step size adapted for Γ(µ_0)): adapt again
            # from where they stand
            loop.init = jnp.asarray(prev[:, -1])
        with count_compilations() as n_compiled:
            # the field Γ(µ_k) is sampled with
            sfld, mmd_ratio = herd_field(problem, _herding_source(problem, loop.fld, damping, particles, buffer),
                                         field_size, gram=loop.gram)
            if loop.init is not None:  # first iteration (or frozen chains): NumPyro warmup
                mcmc.warmup(jax.random.fold_in(kk, 2), sfld, scale,
                            init_params={"w": loop.init if chains > 1 else loop.init[0]})
                loop.state, loop.init = mcmc.post_warmup_state, None
            loop.state, out = collect(loop.state, sfld, scale, jax.random.split(kk, chains))
        compiles.append(n_compiled[0])
        loop.chain_draws = np.asarray(out.pop("w"))
        samples = loop.chain_draws.reshape(-1, problem.d)
        loop.stats = {name: np.asarray(v) for name, v in out.items()}

        test, drift, lz, kl, risk, fld_next = diagnose(
            jnp.asarray(samples), loop.fld, sfld, jax.random.fold_in(kk, 1),
            field_weights_sq(problem.route, damping, particles, buffer, k))
        residual, lz, kl, risk = float(test.statistic), float(lz), float(kl), float(risk)
        if incremental:
            loop.gram = update_block_gram(problem, loop.gram, fld_next, buffer)
        trace["residual"].append(residual)
        trace["residual_floor"].append(float(test.floor))
        trace["p_value"].append(float(test.p_value))
        trace["drift_z"].append(float(drift.z))
        trace["drift_p_value"].append(float(drift.p_value))
        trace["kl_step"].append(float(drift.kl_step))
        trace["w2_successive"].append(np.nan if prev is None else
                                      w2_sliced(samples, prev.reshape(-1, problem.d), n_projections=50).w2)
        trace["risk"].append(risk)
        trace["kl"].append(kl)
        trace["log_z"].append(lz)
        trace["free_energy"].append(float(problem.free_energy(risk, kl)))
        trace["accept_prob"].append(float(np.mean(loop.stats["accept_prob"])))
        trace["field_mmd_ratio"].append(float(mmd_ratio))
        loop.last_field, loop.fld = sfld, fld_next
        bar.update(1)
        bar.set_postfix(ksd2=f"{residual:.3g}", floor=f"{float(test.floor):.2g}", p=f"{float(test.p_value):.2f}")

    def final_draws(stage):
        """All the draws of Γ(µ_K): the last iteration's block and ``final_blocks − 1`` more (not
        checkpointed: a resumed run draws them again from the last checkpoint, with the same keys)."""
        blocks, extra = [loop.chain_draws], {name: [v] for name, v in loop.stats.items()}
        for j in range(1, max(int(final_blocks), 1)):
            fault_point(f"final-block:{j}")
            fk = jax.random.fold_in(key, 30_000_000 + 1000 * stage + j)
            loop.state, out = collect(loop.state, loop.last_field, scale, jax.random.split(fk, chains))
            blocks.append(np.asarray(out.pop("w")))
            for name, v in out.items():
                extra[name].append(np.asarray(v))
        return np.concatenate(blocks, 1), {name: np.concatenate(v, 1) for name, v in extra.items()}

    bar = progress(max_iterations, f"picard-{inner}", show)
    bar.update(start_k)
    t0 = time.time()
    # a run killed after its last checkpoint (converged or at the cap) but before its results resumes
    # to exactly the uninterrupted answer: no further iteration, the checkpointed draws are the result
    finished = loop.last_field is not None and (stopped(start_k - 1) or start_k >= max_iterations)
    converged = finished and stopped(start_k - 1)
    if checkpoint is not None and loop.last_field is None and start_k >= max_iterations:
        # a checkpoint from an older bolt, without its draws' field
        raise BoltError("resume: the checkpoint is already at the iteration cap")
    k = start_k - 1
    while True:  # iterations, then the final draws and their check (a failed check: back to iterating)
        first = k + 1
        for k in range(first, max_iterations if not finished else first):
            iterate(k)
            if on_iteration is not None:
                on_iteration(k, _checkpoint(k, loop, trace, incremental, stage))
            if stopped(k):
                converged = True
                break
        chain_draws, stats = final_draws(stage)
        if not converged or int(final_blocks) <= 1:
            break
        # the final check: the drift test again on all the final draws, whose estimates are several
        # times more precise than one iteration's draws; a transient the iterations could not see
        # at their sample size sends the solve back to iterating
        final = final_check(jnp.asarray(chain_draws), loop.last_field,
                            field_weights_sq(problem.route, damping, particles, buffer, k))
        settings.update(final_drift_z=float(final.z), final_drift_p_value=float(final.p_value),
                        final_checks=stage + 1)
        if float(final.p_value) >= tolerance or k + 1 >= max_iterations:
            converged = float(final.p_value) >= tolerance
            break
        stage, finished, converged = stage + 1, False, False
    bar.close()
    settings["runtime_s"] = time.time() - t0
    samples = chain_draws.reshape(-1, problem.d)
    return SolveResult(
        method=f"picard-{inner}", particles=samples, weights=np.full(len(samples), 1.0 / len(samples)),
        field=loop.last_field, converged=converged, iterations=k + 1,
        trace={n: np.asarray(v, np.float64) for n, v in trace.items()}, settings=settings,
        chains=chain_draws, sample_stats=stats, compilations=compiles)


def check_resume_iteration(iteration, max_iterations: int) -> int:
    """A checkpoint is written after an iteration below the cap: its ``iteration`` must lie in
    ``0 .. max_iterations − 1`` (one of 10⁶ under a cap of 8 resumed to 1000001 iterations); returns it."""
    k = int(iteration)
    if not 0 <= k < max_iterations:
        raise BoltError(f"resume: the checkpoint's iteration {k} is outside 0 .. {max_iterations - 1} "
                        f"(solver.max_iterations = {max_iterations}); start a new run with --out NEW_DIR")
    return k


@dataclass
class _Loop:
    """What a Picard solve carries from one iteration to the next (and a checkpoint holds)."""

    fld: Field  # µ_k: the buffer of blocks with their weights (arcsine route), or f̂ (expectation route)
    init: jax.Array | None = None  # positions to run a (new) warmup from; None: continue the chains
    state: object = None  # the inner sampler's state
    gram: jax.Array | None = None  # herding's kernel sums over the buffer, kept current
    chain_draws: np.ndarray | None = None  # the latest iteration's draws (chain, draw, d)
    last_field: Field | None = None  # the field they were sampled from (None: a checkpoint without it)
    stats: dict | None = None  # their sampler statistics


def _restore(checkpoint: dict, chains: int, d: int):
    """The loop state (less the sampler's), trace, next iteration and final-check stage of a checkpoint
    from :func:`_checkpoint`."""
    loop = _Loop(fld=Field(*(jnp.asarray(checkpoint[f"field_{n}"]) for n in Field._fields)),
                 chain_draws=np.asarray(checkpoint["samples"]).reshape(chains, -1, d))
    done = len(np.asarray(checkpoint["trace_residual"]))
    trace = {k: list(np.asarray(checkpoint[f"trace_{k}"]) if f"trace_{k}" in checkpoint else np.full(done, np.nan))
             for k in TRACE_KEYS}
    if "last_field_weights" in checkpoint:  # the draws of the checkpointed iteration and their µ_k
        loop.last_field = Field(*(jnp.asarray(checkpoint[f"last_field_{n}"]) for n in Field._fields))
        loop.stats = {k[len("stats_"):]: np.asarray(v) for k, v in checkpoint.items() if k.startswith("stats_")}
    return loop, trace, int(checkpoint["iteration"]) + 1, int(checkpoint.get("final_stage", 0))


def _checkpoint(k: int, loop: _Loop, trace: dict, incremental: bool, stage: int) -> dict:
    """Everything iteration k leaves for the next (host arrays), for ``on_iteration``; ``stage`` counts
    the final checks that have rejected (it keys the final blocks' draws)."""
    ck = {"iteration": k, "samples": loop.chain_draws.reshape(-1, loop.chain_draws.shape[-1]), "final_stage": stage}
    ck.update({f"field_{n}": np.asarray(getattr(loop.fld, n)) for n in Field._fields})
    ck.update({f"last_field_{n}": np.asarray(getattr(loop.last_field, n)) for n in Field._fields})
    ck.update({f"stats_{n}": v for n, v in loop.stats.items()})
    if incremental:
        ck["herd_gram"] = np.asarray(loop.gram)
    ck.update({f"trace_{n}": np.asarray(v, np.float64) for n, v in trace.items()})
    leaves = jax.tree.leaves(loop.state)
    ck["mcmc_leaves"] = len(leaves)
    ck.update({f"mcmc_{i}": np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
               for i, x in enumerate(leaves)})
    return ck


def _shard_chains(state, sharding, chains: int):
    """Inside jit: split the chain axis (axis 0 of every leaf of length ``chains``) of a sampler state over devices."""
    if sharding is None:
        return state
    return jax.tree.map(lambda x: constrain_rows(x, sharding) if jnp.ndim(x) and x.shape[0] == chains else x, state)


def _herding_source(problem: Problem, fld: Field, damping: float, particles: int, buffer: int) -> Field:
    """The measure to herd (or sample) µ_k from: the buffer, except undamped on the arcsine route, where
    the buffer is one block repeated and that block alone is the same measure (an n² herding pass, not
    (buffer·n)²)."""
    if problem.route == "arcsine" and damping >= 1.0:
        return Field(fld.particles[:particles], fld.weights[:particles] * buffer, fld.fhat)
    return fld


def _replace_all(old: Field, new: Field) -> Field:
    """Undamped (α = 1) update on the arcsine route: the buffer is refilled with the newest draws."""
    reps = old.particles.shape[0] // new.particles.shape[0]
    return Field(jnp.tile(new.particles, (reps, 1)), jnp.tile(new.weights, reps) / reps, old.fhat)
