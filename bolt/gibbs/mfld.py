"""Mean-field Langevin dynamics dW = −(β∇Ψ(W; µ_t) + W) dt + sqrt(2τ) dB with N particles (MATH.md §4).

The linear part is integrated exactly (exponential Euler), so with Ψ ≡ 0 the chain is stationary
for γ_τ at any step size:

.. math:: W_{k+1} = e^{-h} W_k - (1 - e^{-h})\\,\\beta\\nabla\\Psi(W_k; \\hat\\mu_k)
             + \\sqrt{\\tau(1 - e^{-2h})}\\,\\xi_k.

The interaction is evaluated with the problem's chunked routes (no N×N matrix on the expectation
route; row blocks on the arcsine route). Steps run in a jitted ``lax.scan`` per block; β, τ and h are
traced, so one compilation serves the whole run. After each block the trace records R(µ̂_N) and the
KSD test of half of the particles against the Gibbs measure of the other half (signed KSD², its
wild-bootstrap noise floor, which carries that half's Monte Carlo error, and p-value,
:func:`~bolt.gibbs.stopping.fixed_point_test`); the run is converged when, over the
last quarter of the horizon, the risk is flat (its drift within 3 standard errors of the block-to-block
noise) and the p-values of the last two blocks are both at least ``tolerance / 2`` (so that a run at
its fixed point is called unconverged at most ``tolerance`` of the time).

The particles interact, so they are not draws of the Gibbs measure of any fixed field. The result
therefore holds, as for the Picard solvers, the field µ_K = µ̂_N of the final particles and *exact
draws* of Γ(µ_K) (:func:`~bolt.gibbs.refresh.gibbs_draws`: one MALA chain from each particle), so
that every estimator downstream is that of a Gibbs measure with a known field, with no O(1/N)
self-interaction bias.

With ``devices`` ≠ 1 the particles are split over a 1-D mesh of devices (:mod:`bolt.gibbs.sharding`);
XLA gathers them where the interaction needs all of them, so the run equals the one-device run to
round-off.

With ``precision = "float32"`` the steps (the hot loop) run in float32; every diagnostic, the final
field and the exact draws of Γ(µ_K) are computed in float64 from the float32 particles. The drift's
relative error in float32 is ~1e-7 (``studies/benchmarks/bench_mfld_step.py``), far below the
O(N^{-1/2}) Monte Carlo error of µ̂_N.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from bolt.errors import BoltError
from bolt.gibbs._progress import count_compilations, progress
from bolt.gibbs.refresh import gibbs_draws
from bolt.gibbs.result import SolveResult
from bolt.gibbs.sharding import constrain_rows, row_sharding, shard_rows
from bolt.gibbs.stopping import fixed_point_test
from bolt.problem.model import Problem

__all__ = ["solve_mfld", "build_step", "mfld_time_grid"]


def build_step(problem: Problem, sharding=None):
    """One exponential-Euler step of MFLD; ``step(key, W, beta, tau, h) -> W``.

    ``sharding`` (from :func:`~bolt.gibbs.sharding.row_sharding`, or ``None``) keeps the particle
    axis of the noise and of the new particles split over devices.
    """

    def step(key, W, beta, tau, h):
        fld = problem.field(W)
        grad = problem.grad_psi_field(W, fld)
        decay = jnp.exp(-h)
        noise = constrain_rows(jax.random.normal(key, W.shape, W.dtype), sharding)
        W = decay * W - (1.0 - decay) * beta * grad + jnp.sqrt(tau * (1.0 - decay**2)) * noise
        return constrain_rows(W, sharding)

    return step


def mfld_time_grid(horizon: float, step_size: float = 0.0, blocks: int = 40) -> tuple[float, int]:
    """``(h, steps per block)`` that end the dynamics exactly at ``horizon``: ``blocks · steps · h = T``.

    ``steps = ⌈T / (h₀ · blocks)⌉`` for the requested step ``h₀`` (0: 0.02), and ``h = T / (blocks · steps)``
    ≤ h₀: the time step is lowered (never raised) until the blocks tile the horizon.
    """
    h0 = step_size or 0.02
    if not (math.isfinite(horizon) and horizon > 0 and math.isfinite(h0) and h0 > 0):
        raise BoltError(f"solver.horizon, solver.step_size: need a finite horizon > 0 and step > 0, "
                        f"got {horizon} and {h0}")
    ratio = horizon / (h0 * blocks)
    if not ratio < 2**62:
        raise BoltError(f"solver.horizon: horizon / step_size = {horizon / h0:.3g} steps are too many")
    steps = max(1, math.ceil(ratio))
    return horizon / (blocks * steps), steps


def solve_mfld(key, problem: Problem, *, particles: int = 2000, step_size: float = 0.0, horizon: float = 10.0,
               tolerance: float = 0.05, blocks: int = 40, refresh_steps: int = 200, devices: int = 1,
               precision: str = "float64", checkpoint=None, on_iteration=None,
               progress_bar: bool | None = None) -> SolveResult:
    """Run MFLD from γ_τ to time ``horizon`` and return the particles.

    Args:
      key: JAX PRNG key (block ``b`` uses ``fold_in(key, b)``).
      problem: the problem.
      particles: N.
      step_size: the largest time step h (0: 0.02); it is lowered to ``horizon / (blocks · steps)`` so
        that the run ends at ``horizon`` (:func:`mfld_time_grid`; ``settings["step_size"]`` is the one used).
      horizon: total time T; the relaxation time of the linear part is 1, so T ≈ 10 is near stationarity.
      tolerance: significance level of the KSD test in the convergence check.
      blocks: number of host-side blocks (trace points); steps per block ⌈T/(h·blocks)⌉ (:func:`mfld_time_grid`).
      refresh_steps: MALA steps per chain for the final exact draws of Γ(µ_K).
      devices: split the particles over this many devices (0: all of ``jax.devices()``; 1: no
        sharding); ``particles`` must be a multiple of the count.
      precision: ``"float64"`` or ``"float32"``: the dtype of the particles in the steps (diagnostics,
        the final field and draws are float64 either way).
      checkpoint, on_iteration: resume data / callback ``(block, checkpoint_dict)``.
      progress_bar: show a bar (default: when stderr is a terminal).
    """
    if precision not in ("float64", "float32"):
        raise BoltError(f"solver.precision: expected 'float64' or 'float32', got {precision!r}")
    dtype = jnp.float32 if precision == "float32" else jnp.float64
    h, steps = mfld_time_grid(horizon, step_size, blocks)
    sharding = row_sharding(devices, particles)
    step = build_step(problem, sharding)

    @jax.jit
    def run_block(key, W, beta, tau, h):
        return jax.lax.scan(lambda w, k: (step(k, w, beta, tau, h), None), W, jax.random.split(key, steps))[0]

    @jax.jit
    def diagnose(key, W):
        W = W.astype(jnp.float64)
        return fixed_point_test(key, problem, W[:, None, :]), problem.risk(W)

    settings = dict(method="mfld", particles=particles, step_size=h, horizon=horizon, tolerance=tolerance,
                    blocks=blocks, steps_per_block=steps, precision=precision,
                    devices=1 if sharding is None else sharding.num_devices)
    trace = {"residual": [], "residual_floor": [], "p_value": [], "risk": [], "time": []}
    if checkpoint is None:
        W = jnp.sqrt(problem.tau) * jax.random.normal(jax.random.fold_in(key, 10_000_019), (particles, problem.d))
        start = 0
    else:
        W = jnp.asarray(checkpoint["particles"])
        start = int(checkpoint["iteration"]) + 1
        if not 1 <= start <= blocks:  # a checkpoint is written after a block
            raise BoltError(f"resume: the checkpoint's block {start - 1} is outside 0 .. {blocks - 1}; "
                            f"start a new run with --out NEW_DIR")
        trace = {k: list(np.asarray(checkpoint[f"trace_{k}"])) for k in trace}
    W = shard_rows(W.astype(dtype), sharding)
    bar = progress(blocks, "mfld", progress_bar)
    bar.update(start)
    compiles = []
    t0 = time.time()
    for b in range(start, blocks):
        with count_compilations() as nc:
            W = run_block(jax.random.fold_in(key, b), W, problem.beta, problem.tau, h)
        compiles.append(nc[0])
        test, risk = diagnose(jax.random.fold_in(key, 20_000_000 + b), W)
        trace["residual"].append(float(test.statistic))
        trace["residual_floor"].append(float(test.floor))
        trace["p_value"].append(float(test.p_value))
        trace["risk"].append(float(risk))
        trace["time"].append((b + 1) * steps * h)
        bar.update(1)
        if on_iteration is not None:
            ck = {"iteration": b, "particles": np.asarray(W, np.float64)}
            ck.update({f"trace_{k}": np.asarray(v, np.float64) for k, v in trace.items()})
            on_iteration(b, ck)
    bar.close()
    tail = max(2, blocks // 4)
    r = np.asarray(trace["risk"][-tail:])
    slope_ok = True
    if len(r) >= 3:
        t = np.arange(len(r))
        slope = np.polyfit(t, r, 1)[0] * len(r)
        noise = np.std(np.diff(r), ddof=1) / np.sqrt(2) if len(r) > 2 else 0.0
        slope_ok = abs(slope) <= 3 * noise * np.sqrt(12 / len(r)) + 1e-12 or abs(slope) < 1e-3
    # the last two tests at level tolerance/2 each (Bonferroni): a run at its fixed point is called
    # unconverged at most `tolerance` of the time (both at `tolerance`: about twice that)
    converged = bool(slope_ok and len(trace["p_value"]) >= 2 and min(trace["p_value"][-2:]) >= tolerance / 2)
    W = W.astype(jnp.float64)
    fld = problem.field(W)
    fresh = gibbs_draws(jax.random.fold_in(key, 10_000_021), problem, fld, W, n_steps=refresh_steps)
    settings.update(refresh_steps=refresh_steps, refresh_accept=float(fresh.accept), runtime_s=time.time() - t0)
    return SolveResult(method="mfld", particles=np.asarray(fresh.draws), weights=np.full(particles, 1.0 / particles),
                       field=fld, converged=converged, iterations=blocks,
                       trace={k: np.asarray(v, np.float64) for k, v in trace.items()}, settings=settings,
                       compilations=compiles)
