r"""Online SGD on a width-N network and the greedy McKean–Vlasov dynamics (MATH.md §4, "Greedy approximations").

**SGD.** Per neuron, with a fresh input ``X_{k+1} ~ π`` (a minibatch of ``B`` of them) and ``Y = f(X)``,

.. math:: W^i_{k+1} = W^i_k + \eta\beta\,\frac1B\sum_{b}\big(Y_b - \hat f_N(X_b; W_k)\big)\,
          \nabla_w\sigma(X_b; W^i_k),\qquad \hat f_N(x; W) = \frac1N\sum_i \sigma(x; W^i),

``W^i_0`` iid ``γ_τ``, ``k = 0 … n`` (``nη = 1`` in the theory). This is the update of MATH.md §4 as
written. Its mean increment is ``ηβ E_π[(f − f̂_N)∇σ(X; W^i)] = −ηβ ∇Ψ(W^i; µ̂_W)`` with
``Ψ(w; µ) = E_π[(f̂(X; µ) − f(X))σ(X; w)]`` (MATH.md §1; ``∇Ψ`` is the mean-field gradient of ½R), so
one step is an Euler step of length η of the noise-free greedy flow ``dW = −β∇Ψ(W; µ̂_W) dt`` plus
a martingale increment: ``t = kη`` is the time of the McKean–Vlasov flows, and ``nη = 1`` puts the
last step at ``t = 1``. In terms of the per-sample loss ``ℓ = ½(Y − f̂_N(X))²`` the update is plain
SGD with per-parameter step ``ηβN`` (``∂ℓ/∂W^i = −(1/N)(Y − f̂_N)∇σ``) — the mean-field scaling: the
``1/N`` of the output is undone by the step size so that each neuron moves O(ηβ) per step.

**Network risk.** :func:`network_risk` is ``R_N(W) = R(µ̂_W) = E_π(f − f̂_N(·; W))²`` of the width-N
network itself: on the arcsine route ``R0 + (2/N)Σ_i f̃(W^i) + (1/N²)Σ_{i,j} K(W^i, W^j)`` exactly,
the ``i = j`` terms included (a V-statistic, not the U-statistic that estimates the risk of a law);
on the expectation route the empirical risk over the problem's input sample (for a data set, its
empirical risk).

**Greedy McKean–Vlasov.** ``dŴ = −β∇Ψ(Ŵ; Law(Ŵ_t)) dt + √τ dB``, ``Ŵ_0 = 0``, t ∈ [0, 1], with
``Law(Ŵ_t)`` replaced by the empirical law of N interacting particles; simulated by
:func:`bolt.dynamics.sde.simulate` (Euler–Maruyama, uniform grid) with a drift that lets each
repetition's N particles interact only among themselves.

Anatomy (STYLE.md §1): :class:`SGDState`, :class:`SGDInfo`, :func:`init`, :func:`build_step`
(β and η traced), and :func:`run_sgd`, one jitted ``lax.scan`` per block of steps, ``vmap``-ed over
independent repetitions (one compilation for the whole run; the host loop over blocks drives the
progress bar and records ``R_N`` between blocks).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bolt.errors import BoltError
from bolt.problem.spec import GaussianInputs

__all__ = ["SGDState", "SGDInfo", "SGDResult", "GreedyResult", "init", "build_step", "input_sampler",
           "network_risk", "run_sgd", "record_steps", "greedy_drift", "run_greedy", "greedy_cost", "reference_flow",
           "REFERENCE_NODES"]

Array = jax.Array


class SGDState(NamedTuple):
    """What carries over between SGD steps."""

    particles: Array  # (N, d)


class SGDInfo(NamedTuple):
    """Per-step diagnostics (never fed back)."""

    loss: Array  # () the minibatch's mean (Y − f̂_N(X))² before the step: an unbiased one-step estimate of R_N


class SGDResult(NamedTuple):
    """Recorded SGD trajectories.

    Attributes:
      steps: ``(K,)`` the recorded step numbers k (0 first, n last).
      times: ``(K,)`` ``kη``.
      risk: ``(R, K)`` ``R_N(W_k)`` for each of R repetitions.
      initial: ``(R, N, d)`` ``W_0`` of each repetition.
      final: ``(R, N, d)`` ``W_n``.
      loss: ``(R, n)`` per-step minibatch loss (before the step).
      eta: the step size η.
    """

    steps: np.ndarray
    times: np.ndarray
    risk: np.ndarray
    initial: np.ndarray
    final: np.ndarray
    loss: np.ndarray
    eta: float


class GreedyResult(NamedTuple):
    """The greedy McKean–Vlasov dynamics, R groups of N interacting particles.

    Attributes:
      times: ``(S,)`` saved times.
      risk: ``(R, S)`` ``R_N`` of each group's particles at the saved times (the network they form).
      sde: the :class:`~bolt.dynamics.sde.SDEResult` of all ``R·N`` paths (for ``cost_J``).
    """

    times: np.ndarray
    risk: np.ndarray
    sde: object


def init(key, n: int, d: int, tau, dtype=None) -> SGDState:
    """``W^i_0`` iid ``γ_τ = N(0, τI)``: ``n`` neurons in ``R^d``."""
    dtype = dtype or jnp.result_type(float)
    return SGDState(jnp.sqrt(jnp.asarray(tau, dtype)) * jax.random.normal(key, (int(n), int(d)), dtype))


def input_sampler(problem):
    """``sample(key, B) -> (X (B, p), Y (B,))``: fresh draws of ``(X, f(X))`` under π — the law of Ψ and R.

    Arcsine route (Gaussian inputs with closed forms): ``X ~ N(0, I_p)`` and ``Y = f(X)`` exactly. Expectation
    route (a fixed sample, a data set, and Gaussian inputs without closed forms, whose π is the fixed sample
    ``problem.X`` of ``input_samples`` draws): rows drawn uniformly with replacement from
    ``(problem.X, problem.Y)``, so that SGD follows the same Ψ, R_N and R(µ*_t) as the solved µ*.
    """
    if problem.route == "arcsine" and isinstance(problem.inputs, GaussianInputs):
        p = problem.p

        def sample(key, B):
            X = jax.random.normal(key, (B, p))
            return X, problem.target_values(X)

        return sample
    if problem.X is None or problem.Y is None:
        raise BoltError("dynamics: the problem has no input sample to draw from")
    Xs, Ys = jnp.asarray(problem.X), jnp.asarray(problem.Y)

    def sample(key, B):
        idx = jax.random.randint(key, (B,), 0, Xs.shape[0])
        return Xs[idx], Ys[idx]

    return sample


def build_step(problem, minibatch: int = 1):
    r"""One SGD step on a minibatch of ``B`` fresh inputs (``B`` static; β, η traced).

    ``W^i ← W^i + (ηβ/B) Σ_b (Y_b − f̂_N(X_b; W)) ∇_w σ(X_b; W^i)`` for every neuron i; the sum over b of
    ``r_b ∇σ(X_b; W^i)`` is one vector–Jacobian product of ``W ↦ σ(X, W)`` (any unit, autodiff).
    """
    sample = input_sampler(problem)
    B = int(minibatch)
    if B < 1:
        raise BoltError(f"minibatch: must be >= 1, got {minibatch}")

    def step(key, state: SGDState, beta, eta):
        W = state.particles
        X, Y = sample(key, B)
        X, Y = X.astype(W.dtype), Y.astype(W.dtype)
        S, vjp = jax.vjp(lambda V: problem.sigma(X, V), W)  # (B, N)
        r = Y - jnp.mean(S, axis=1)
        (g,) = vjp(jnp.broadcast_to(r[:, None], S.shape))  # (N, d): Σ_b r_b ∇σ(X_b; W^i)
        return SGDState(W + (eta * beta / B) * g), SGDInfo(jnp.mean(r * r))

    return step


def network_risk(problem, W) -> Array:
    """``R_N(W) = E_π(f − f̂_N(·; W))²`` of the width-N network (``W`` ``(N, d)``; the i = j terms included)."""
    return problem.risk(W)


def record_steps(steps: int, records: int) -> tuple[np.ndarray, int]:
    """Recorded steps ``0, s, 2s, …, n`` with stride ``s = ⌈n/records⌉`` (the last one is n)."""
    n = int(steps)
    s = max(1, -(-n // max(1, int(records))))
    ks = np.minimum(np.arange(0, -(-n // s) + 1) * s, n)
    return ks, s


def run_sgd(key, problem, n: int, steps: int, *, eta: float | None = None, beta: float | None = None,
            minibatch: int = 1, repetitions: int = 1, records: int = 50, progress_bar: bool | None = None,
            dtype=None) -> SGDResult:
    """Run ``repetitions`` independent SGD trajectories of a width-``n`` network and record ``R_N(W_k)``.

    Repetition r uses ``fold_in(key, r)`` (split into an initialisation key and a step key); step k of it
    uses ``fold_in(step key, k)``, so trajectories do not depend on ``records`` or on the number of
    repetitions run beside them.

    Args:
      key: PRNG key.
      problem: the problem (σ, π, f; its β unless ``beta`` is given, and its τ for ``W_0 ~ γ_τ``).
      n: width N.
      steps: number of steps n.
      eta: step size η (default ``1/steps``).
      beta: β of the update (default ``problem.beta``).
      minibatch: inputs per step.
      repetitions: independent networks run at once (``vmap``).
      records: about this many recording intervals (``R_N`` at every ``⌈steps/records⌉``-th step, 0 and n).
      progress_bar: ``None``: when stderr is a terminal.

    Returns:
      :class:`SGDResult`.
    """
    from bolt.gibbs._progress import progress

    if int(n) < 1:
        raise BoltError(f"particles: must be >= 1, got {n}")
    if int(steps) < 1:
        raise BoltError(f"steps: must be >= 1, got {steps}")
    if int(repetitions) < 1:
        raise BoltError(f"repetitions: must be >= 1, got {repetitions}")
    n_steps = int(steps)
    eta = 1.0 / n_steps if eta is None else float(eta)
    if not (np.isfinite(eta) and eta > 0):
        raise BoltError(f"step_size: must be > 0, got {eta}")
    beta = problem.beta if beta is None else float(beta)
    ks, block = record_steps(n_steps, records)
    n_blocks = len(ks) - 1
    dtype = dtype or jnp.result_type(float)
    reps = int(repetitions)
    rep_keys = jax.vmap(lambda r: jax.random.split(jax.random.fold_in(key, r)))(jnp.arange(reps))  # (R, 2, ...)
    W0 = jax.vmap(lambda k: init(k, n, problem.d, problem.tau, dtype).particles)(rep_keys[:, 0])
    step_keys = rep_keys[:, 1]
    step = build_step(problem, minibatch)

    @jax.jit
    def run_block(W, k0, beta, eta):
        def one(Wr, kr):
            def body(Wc, k):
                active = k < n_steps  # the last block may run past n: those steps are no-ops
                st, info = step(jax.random.fold_in(kr, k), SGDState(Wc), beta, jnp.where(active, eta, 0.0))
                return st.particles, info.loss

            return jax.lax.scan(body, Wr, k0 + jnp.arange(block))

        return jax.vmap(one)(W, step_keys)

    risk_fn = jax.jit(jax.vmap(lambda W: network_risk(problem, W)))
    risks = [np.asarray(risk_fn(W0))]
    losses = []
    W = W0
    bar = progress(n_steps, "SGD", progress_bar)
    try:
        for j in range(n_blocks):
            W, loss = run_block(W, j * block, jnp.asarray(beta, dtype), jnp.asarray(eta, dtype))
            risks.append(np.asarray(risk_fn(W)))
            losses.append(np.asarray(loss))
            bar.update(int(ks[j + 1] - ks[j]))
    finally:
        bar.close()
    loss = np.concatenate(losses, axis=1)[:, :n_steps]
    return SGDResult(ks, ks * eta, np.stack(risks, 1), np.asarray(W0), np.asarray(W), loss, eta)


def greedy_drift(problem, n: int, beta: float | None = None):
    """The drift ``−β∇Ψ(W; µ̂)`` for ``R·n`` stacked particles, µ̂ the empirical law of each group of ``n``
    (a :func:`~bolt.dynamics.sde.function_drift`: deterministic)."""
    from bolt.dynamics.sde import function_drift

    beta = problem.beta if beta is None else float(beta)

    def u(W, t):
        G = W.reshape(-1, int(n), W.shape[1])
        g = jax.vmap(lambda V: problem.grad_psi(V, V))(G)
        return -beta * g.reshape(W.shape)

    return function_drift(u)


def run_greedy(key, problem, n: int, steps: int, *, repetitions: int = 1, save_times=(0.0, 0.5, 1.0),
               progress_bar: bool | None = None) -> GreedyResult:
    """The greedy McKean–Vlasov dynamics from 0 on [0, 1]: ``repetitions`` independent groups of ``n``
    interacting particles, ``steps`` uniform Euler–Maruyama steps (save times are added to the grid).

    Returns:
      :class:`GreedyResult` with ``R_N`` of each group at ``save_times`` (sorted, unique).
    """
    from bolt.dynamics.sde import simulate

    if int(n) < 1:
        raise BoltError(f"particles: must be >= 1, got {n}")
    reps = int(repetitions)
    res = simulate(key, greedy_drift(problem, n), problem.tau, reps * int(n), problem.d, steps=int(steps),
                   save_times=save_times, power=1.0, block=10, progress_bar=progress_bar)
    paths = jnp.asarray(res.paths).reshape(reps, int(n), len(res.times), problem.d)
    risk_fn = jax.jit(jax.vmap(jax.vmap(lambda W: network_risk(problem, W), in_axes=1)))  # over groups, times
    return GreedyResult(res.times, np.asarray(risk_fn(paths)), res)


def greedy_cost(problem, result: GreedyResult) -> dict:
    """``J = ½E∫|u|² dt + (β/2) R(Law(Ŵ_1))`` of the greedy control (:func:`~bolt.dynamics.costs.cost_J`), with the
    endpoint risk a U-statistic over pairs from *different* groups only.

    Particles of one group interact, so a pair from the same group is not a pair of independent draws of
    ``Law(Ŵ_1)``; pairs across groups are. ``∫∫K dν dν`` is estimated by the mean of ``K`` over cross-group
    pairs, ``(n²I − Σ_g N²I_g)/(n² − R N²)`` with ``I``, ``I_g`` the V-statistics of all ``n = R N`` endpoints
    and of each group. The standard error is ``cost_J``'s (per-path influence, paths treated as independent).
    Needs at least 2 groups.

    Returns:
      the keys of ``cost_J``: ``J``, ``J_se``, ``control_energy(_se)``, ``endpoint_risk(_se)``.
    """
    from bolt.dynamics.costs import control_energy

    reps = int(result.risk.shape[0])
    if reps < 2:
        raise BoltError("greedy_cost: needs at least 2 groups (repetitions) for independent endpoint pairs")
    W = jnp.asarray(result.sde.endpoint)
    n = W.shape[0]
    m = n // reps

    @jax.jit
    def parts(W):  # one compilation for the whole estimate (eager ops would compile one by one)
        G = W.reshape(reps, m, W.shape[1])
        within = jnp.sum(jax.vmap(lambda V: problem.interaction(V))(G)) * m * m
        cross = (n * n * problem.interaction(W) - within) / (n * n - reps * m * m)
        return problem.R0() + 2.0 * jnp.mean(problem.ftilde(W)) + cross, problem.psi(W, W)

    risk, own = parts(W)
    risk, own = float(risk), np.asarray(own, np.float64)
    e = np.asarray(result.sde.energy, np.float64)
    en, en_se = control_energy(result.sde)
    infl = e + problem.beta * own  # cost_J's per-path influence
    return {"J": en + 0.5 * problem.beta * risk, "J_se": float(infl.std(ddof=1) / np.sqrt(len(infl))),
            "control_energy": en, "control_energy_se": en_se, "endpoint_risk": risk,
            "endpoint_risk_se": float(2 * own.std(ddof=1) / np.sqrt(len(own)))}


#: nodes of the uniform grid that carries µ*_t in d = 1 (one shape: one compilation for every t)
REFERENCE_NODES = 2001


def _mixture_grid_1d(y, a, t: float, tau: float, nodes: int = REFERENCE_NODES, per_sd: float = 4.0):
    """Nodes ``(M, 1)`` and weights of a quadrature for ``µ*_t = Σ_j a_j N(t y_j, v)``, ``v = τ t(1 − t)``, d = 1.

    A uniform grid of ``nodes`` points over the support ± 9 sd when it resolves the sd with ``per_sd``
    points; otherwise (t near 1: a narrow kernel on a wide support) the product of the atoms with an
    8-node Gauss–Hermite rule. ``v = 0`` (t = 0 or 1): the atoms ``t y_j`` themselves.
    """
    v = tau * t * (1.0 - t)
    if v <= 0:
        return t * y[:, None], a
    sd = np.sqrt(v)
    lo, hi = t * y.min() - 9.0 * sd, t * y.max() + 9.0 * sd
    h = (hi - lo) / (nodes - 1)
    if h <= sd / per_sd:
        x = lo + h * np.arange(nodes)
        dens = np.exp(-((x[:, None] - t * y[None, :]) ** 2) / (2 * v)) @ a
        return x[:, None], dens / dens.sum()
    z, wz = np.polynomial.hermite_e.hermegauss(8)
    x = (t * y[:, None] + sd * z[None, :]).reshape(-1, 1)
    return x, (a[:, None] * (wz / wz.sum())[None, :]).reshape(-1)


def reference_flow(key, problem, particles, weights, times, n: int = 4000, *, exact: bool = False,
                   ess: float | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    r"""``R(µ*_t)`` at ``times`` from the path measure, with its Monte Carlo standard error.

    ``µ*_t = Law(t W_1 + sqrt(τ t(1 − t)) ξ)``, ``W_1 ~ µ*`` (the weighted particles). In d = 1 the mixture
    density ``Σ_j a_j N(t y_j, τ t(1 − t))`` is put on a uniform grid of 2001 nodes (≥ 4 per standard
    deviation, 9 standard deviations beyond the support; the Riemann sum of a smooth Gaussian-tailed
    integrand is spectrally accurate), or, where that grid is too coarse, on the atoms times an 8-node
    Gauss–Hermite rule, and ``R`` of that weighted set is computed exactly (quadrature error only). That is
    the risk of the flow of the particle set: when the particles are draws of µ* (a sampler's, ``exact=False``)
    the standard error is theirs, from R's influence ``2Ψ̄_t(y) = 2E_ξ Ψ(t y + sqrt(τ t(1 − t)) ξ; µ*_t)``
    (:func:`_particle_se_1d`); when they are µ* itself (a quadrature grid, ``exact=True``) it is 0. Otherwise
    ``n`` bridge paths (:func:`~bolt.dynamics.path.bridge_paths_from_zero`) and at each time the U-statistic risk
    of the draws with its influence-function standard error (:func:`~bolt.dynamics.costs.endpoint_risk`; the
    paths' error only). Times above 1 are held at ``t = 1`` (µ*_1 = µ*, the end of the flow).

    Args:
      exact: the weighted particles are µ* (d = 1: standard error 0).
      ess: effective sample size of the particles as draws of µ* (e.g. the run summary's ``ess``; MCMC draws
        are correlated); default, and at most, ``1/Σ a_j²`` (independent draws).

    Returns:
      ``(risk (S,), se (S,), estimator)``.
    """
    from bolt.dynamics.costs import endpoint_risk
    from bolt.dynamics.path import bridge_paths_from_zero

    t = np.minimum(np.asarray(times, np.float64).reshape(-1), 1.0)
    uniq, inv = np.unique(t, return_inverse=True)
    P = np.asarray(particles, np.float64)
    a = np.full(len(P), 1.0 / len(P)) if weights is None else np.asarray(weights, np.float64)
    a = a / a.sum()
    r, s = np.empty(len(uniq)), np.zeros(len(uniq))
    if problem.d == 1:
        risk = jax.jit(problem.risk)  # compiles once per node count (grid, Gauss–Hermite, atoms)
        psi = jax.jit(problem.psi)
        n_eff = 1.0 / np.sum(a * a) if ess is None or not np.isfinite(ess) else min(float(ess), 1.0 / np.sum(a * a))
        for j, tj in enumerate(uniq):
            x, wx = _mixture_grid_1d(P[:, 0], a, float(tj), problem.tau)
            r[j] = float(risk(jnp.asarray(x), jnp.asarray(wx)))
            if not exact:
                s[j] = _particle_se_1d(psi, P[:, 0], a, float(tj), problem.tau, x, wx, n_eff)
        how = "quadrature of the mixture density (grid or Gauss-Hermite, d = 1)"
        return r[inv], s[inv], how + ("" if exact else "; SE: the particles' Monte Carlo error")
    paths, _ = bridge_paths_from_zero(key, jnp.asarray(P), jnp.asarray(a), uniq, problem.tau, int(n))
    paths = np.asarray(paths)
    for j in range(len(uniq)):
        r[j], s[j], _ = endpoint_risk(problem, paths[:, j])
    return r[inv], s[inv], f"U-statistic over {int(n)} bridge paths"


def _particle_se_1d(psi, y, a, t: float, tau: float, x, wx, n_eff: float, order: int = 4) -> float:
    """Standard error of ``R(µ_t)`` from the particles ``(y, a)`` of µ, ``µ_t`` on the quadrature ``(x, wx)``.

    First order: ``R(µ_t) − R(µ*_t) ≈ Σ_j a_j φ(y_j) − E_{µ*} φ`` with ``φ(y) = 2 E_ξ Ψ(t y + sqrt(τ t(1 − t)) ξ; µ_t)``
    (Ψ is half of R's first variation; ξ by an ``order``-node Gauss–Hermite rule, Ψ smooth); the variance is
    the weighted variance of φ (reliability weights) over ``n_eff`` draws.
    """
    z, wz = np.polynomial.hermite_e.hermegauss(order)
    pts = (t * y[:, None] + np.sqrt(tau * t * (1.0 - t)) * z[None, :]).reshape(-1, 1)
    psi_pts = np.asarray(psi(jnp.asarray(pts), jnp.asarray(x), jnp.asarray(wx))).reshape(len(y), order)
    phi = 2.0 * psi_pts @ (wz / wz.sum())
    var = np.sum(a * (phi - a @ phi) ** 2) / max(1.0 - np.sum(a * a), 1e-300)
    return float(np.sqrt(var / n_eff))
