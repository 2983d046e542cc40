"""The bridge's and the dynamics' verdicts and standard errors (issue 25: items 1, 3, 8b, 8c).

- ``drift_bound``: not informative for the drift of the bridge to a particle set (it is unbounded near
  t = 1); judged with the drift estimator's SE for the potential drift.
- The jackknifed importance-sampling drift: exact leave-one-out ratios at any weight gap, and the plain
  ratio (counted in the output) where one draw carries the weight.
- SGD on the expectation route draws its inputs from the problem's fixed sample, the law of Ψ and R_N.
- The d = 1 reference flow R(µ*_t) of a sampler's particle set has the Monte Carlo error of those particles.

Tolerances are k = 5 standard errors (STYLE.md §5); seeds are split from one key, never chosen.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bolt
from bolt.dynamics.follmer import Potential, follmer_drift_potential
from bolt.dynamics.gaussian import gaussian_follmer_drift, gaussian_potential
from bolt.testing import assert_close_z, mean_and_se

K = 5.0


def _spiky(c: float, beta: float = 1.0, tau: float = 0.5):
    """A Gaussian potential with ``(β/τ)Ψ(y) = c y²`` (µ* = N(0, s²), ``1/s² = 2c + 1/τ``): ``(pot, s2)``."""
    s2 = 1.0 / (2.0 * c + 1.0 / tau)
    return Potential(*gaussian_potential(np.zeros(1), s2, beta, tau)), s2


# ----------------------------------------------------------------------------- item 3: the jackknife
def test_jackknife_keeps_the_plain_ratio_where_one_draw_carries_the_weight():
    """(β/τ)Ψ = 100 y², M = 16, 2000 positions: about half the rows have ESS < 2. Exactly those are flagged
    ``fallback`` and return the plain self-normalised ratio of the same draws; the others are jackknifed."""
    beta, tau, t = 1.0, 0.5, 0.5
    pot, _ = _spiky(100.0, beta, tau)
    W = jnp.sqrt(tau) * jax.random.normal(jax.random.PRNGKey(3), (2000, 1))
    key = jax.random.PRNGKey(1)
    jk = follmer_drift_potential(key, W, t, pot, beta, tau, inner=16, jackknife=True)
    plain = follmer_drift_potential(key, W, t, pot, beta, tau, inner=16)
    low = np.asarray(jk.ess) < 2.0
    assert 100 < low.sum() < 1900, low.sum()
    np.testing.assert_array_equal(np.asarray(jk.fallback), low)
    np.testing.assert_allclose(np.asarray(jk.drift)[low], np.asarray(plain.drift)[low], rtol=1e-12, atol=0)
    assert np.all(np.asarray(jk.drift)[~low] != np.asarray(plain.drift)[~low])
    assert plain.fallback is None


def test_jackknife_leave_one_out_is_exact_at_any_weight_gap():
    """(β/τ)Ψ = 1e5 y² (log-weight gaps between the two best of 16 draws far above 37): with the fallback off
    (``min_ess = 0``) the jackknife ``M b̂ − (M − 1) mean_j b̂_{−j}`` is a combination of convex combinations of
    the ``h_j = −β∇Ψ(Y_j)``, so ``|b| ≤ (2M − 1) max_j |h_j|`` on every row. Dividing the top draw's remainder
    ``1 − ω_j`` (round-off) by 2.2e-308 gave ~1e295 here."""
    beta, tau, t, M = 1.0, 0.5, 0.5, 16
    pot, s2 = _spiky(1e5, beta, tau)
    W = jnp.sqrt(tau) * jax.random.normal(jax.random.PRNGKey(3), (2000, 1))
    est = follmer_drift_potential(jax.random.PRNGKey(1), W, t, pot, beta, tau, inner=M, jackknife=True, min_ess=0.0)
    assert not np.any(np.asarray(est.fallback))
    # h = −τ(1/s² − 1/τ) Y with |Y| ≤ |w| + 6.5 sqrt(τ(1 − t)) (32 000 normals: P(|ξ| > 6.5) < 3e-6 in all)
    h_max = tau * (1 / s2 - 1 / tau) * (np.abs(np.asarray(W)[:, 0]) + 6.5 * np.sqrt(tau * (1 - t)))
    assert np.all(np.abs(np.asarray(est.drift)[:, 0]) <= (2 * M - 1) * h_max)


def test_sde_and_bridge_report_the_jackknife_fallbacks():
    """The SDE counts, per step, the paths whose drift fell back; ``bolt bridge``'s ``ess`` entry carries the total
    and says what it means (nothing when there are none)."""
    from bolt.dynamics.bridge import ess_summary
    from bolt.dynamics.sde import potential_drift, simulate

    pot, _ = _spiky(100.0)
    res = simulate(jax.random.PRNGKey(0), potential_drift(pot, 1.0, 0.5, inner=32), 0.5, 200, 1, steps=5,
                   save_times=(1.0,), progress_bar=False)
    assert res.fallback.shape == res.drift_max.shape and np.all(res.fallback <= 200)
    ess = ess_summary(res)
    assert ess["jackknife_fallback"] == int(res.fallback.sum()) > 0
    assert "ESS < 2" in ess["jackknife_fallback_note"]
    quiet = ess_summary(res._replace(fallback=np.zeros_like(res.fallback)))
    assert quiet["jackknife_fallback"] == 0 and quiet["jackknife_fallback_note"] == ""


# ----------------------------------------------------------------------------- item 1: drift_bound
def _gauss2():
    m, s2, beta, tau = np.array([0.5, -0.3]), 0.3, 1.0, 0.5
    return Potential(*gaussian_potential(m, s2, beta, tau)), m, s2, beta, tau


def test_sde_step_reports_the_se_of_the_largest_drift():
    """One path at a fixed (w, t), 1000 steps from independent keys: the step's ``drift_max`` is |b̂| of the mean of
    the two jackknifed halves (16 draws each) and ``drift_max_se`` its SE, so the z-scores (|b̂| − |b*|)/se against
    the Gaussian closed form have rms in [0.7, 1.4] (the Student-t spread of M = 16, as for the drift itself);
    SE 0 for an exact drift."""
    from bolt.dynamics.sde import SDEState, build_step, potential_drift, samples_drift

    pot, m, s2, beta, tau = _gauss2()
    w, t = jnp.array([[0.3, -0.2]]), 0.5
    exact = float(np.linalg.norm(gaussian_follmer_drift(w, t, m, s2, tau)))
    step = build_step(potential_drift(pot, beta, tau, inner=32), tau)
    state = SDEState(w, jnp.zeros(1))
    keys = jax.random.split(jax.random.PRNGKey(0), 1000)
    info = jax.vmap(lambda k: step(k, state, t, 0.01)[1])(keys)
    se = np.asarray(info.drift_max_se)
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    z = (np.asarray(info.drift_max) - exact) / se
    assert 0.7 < np.sqrt(np.mean(z**2)) < 1.4, np.sqrt(np.mean(z**2))
    atoms = jnp.array([[-1.0, 0.0], [1.0, 0.5]])
    _, info = build_step(samples_drift(atoms, None, tau), tau)(keys[0], state, t, 0.01)
    assert float(info.drift_max_se) == 0.0 and int(info.fallback) == 0


def test_drift_bound_is_judged_with_the_drift_estimators_se():
    """The potential drift on a Gaussian µ*: drift_bound's lhs SE is the step's ``drift_max_se`` at the step of the
    largest |b|, positive; the bound holds or is within its error bar (it is true: never "violated")."""
    from bolt.dynamics.bridge import drift_bound_check
    from bolt.dynamics.sde import potential_drift, simulate

    pot, m, s2, beta, tau = _gauss2()
    res = simulate(jax.random.PRNGKey(0), potential_drift(pot, beta, tau, inner=32), tau, 200, 2, steps=20,
                   save_times=(0.5, 1.0), progress_bar=False)
    support = m + np.sqrt(s2) * np.random.default_rng(0).normal(size=(500, 2))
    v, entry = drift_bound_check(res, pot, support, beta, True)
    k = int(np.argmax(res.drift_max))
    assert v.lhs == entry["max_drift"] == float(res.drift_max[k])
    assert v.lhs_se == entry["max_drift_se"] == float(res.drift_max_se[k]) > 0
    assert v.outcome in ("holds", "inconclusive") and entry["holds"] == v.holds


def _grid_mu():
    """A d = 1 problem and a grid-like weighted set standing in for µ* (the bridge's checks do not need µ* solved)."""
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.5, tau=0.5)
    P = np.linspace(-1.5, 2.5, 81)[:, None]
    w = np.exp(-((P[:, 0] - 0.5) ** 2) / 0.2)
    return pb, P, w / w.sum()


def test_drift_bound_check_is_not_informative_for_the_samples_drift():
    """The exact drift to the atoms of a d = 1 grid µ* exceeds βL* near t = 1 (it grows like (1 − t)^(−1/2)), which
    says nothing about the Föllmer drift: "not informative" with that reason, and its SE is 0 (a deterministic drift).
    (The fast variant of the end-to-end test below.)"""
    from bolt.dynamics.bridge import drift_bound_check
    from bolt.dynamics.follmer import problem_potential
    from bolt.dynamics.sde import samples_drift, simulate

    pb, P, w = _grid_mu()
    res = simulate(jax.random.PRNGKey(0), samples_drift(P, w, pb.tau), pb.tau, 100, 1, steps=10,
                   save_times=(0.5, 1.0), progress_bar=False)
    v, entry = drift_bound_check(res, problem_potential(pb, P, w), P, pb.beta, False)
    assert entry["max_drift"] > entry["beta_L_star"] and entry["max_drift_time"] > 0.9
    assert v.outcome == "not informative" and "(1 - t)^(-1/2)" in v.note and v.lhs_se == 0.0


@pytest.mark.slow
def test_bridge_drift_bound_is_not_informative_for_the_samples_drift():
    """``bolt bridge --drift samples`` end to end (``bridge_checks``) on a d = 1 grid µ*: "not informative", not
    "violated" (what it read before)."""
    from bolt.dynamics.bridge import bridge_checks

    pb, P, w = _grid_mu()
    mean = w @ P
    cov = ((P - mean) * w[:, None]).T @ (P - mean)
    summary = {"kl": 0.1, "kl_se": 0.0, "free_energy": 0.2, "free_energy_se": 0.0, "mean": mean, "covariance": cov}
    out, _ = bridge_checks(jax.random.PRNGKey(0), pb, P, w, summary, n=100, steps=10, drift="samples", grid=True,
                           null_reps=2, progress_bar=False)
    v = {x["name"]: x for x in out["verdicts"]}["drift_bound"]
    assert out["drift_bound"]["max_drift"] > out["drift_bound"]["beta_L_star"]  # what used to read as "violated"
    assert v["outcome"] == "not informative" and "(1 - t)^(-1/2)" in v["note"], v
    assert out["drift_bound"]["holds"] is False and out["drift_bound"]["max_drift_se"] == 0.0


def test_infinite_standard_error_is_inconclusive():
    """An estimate from one effective draw has an infinite SE: no verdict, whatever the sides."""
    from bolt.verdicts import judge

    for kind in ("le", "equal"):
        assert judge(5.0, 1.0, float("inf"), 0.0, kind=kind)[0] == "inconclusive"
        assert judge(1.0, 5.0, 0.0, float("inf"), kind=kind)[0] == "inconclusive"
    assert judge(5.0, 1.0, float("nan"), 0.0)[0] == "violated"  # NaN: no error bar (a maximum), as before


# ----------------------------------------------------------------------------- item 8b: SGD's input law
def test_sgd_on_the_expectation_route_draws_from_the_fixed_input_sample():
    """tanh with Gaussian inputs has no closed form: π is the problem's fixed sample of 8 inputs, the law of Ψ, R_N
    and R(µ*_t). SGD's inputs are rows of that sample, and its mean increment is −ηβ∇Ψ(W; µ̂_W) of the problem
    (20 000 steps from one W, 5 SE); the gradient under fresh N(0, I) inputs (a 100 000-input sample) is far off."""
    from bolt.dynamics.sgd import SGDState, build_step, init, input_sampler

    teacher = bolt.Teacher([[1.0, 0.5]], [1.0])
    pb = bolt.make_problem("tanh", teacher, beta=0.7, tau=0.3, inputs=bolt.GaussianInputs(8))
    assert pb.route == "expectation"
    Xs, Ys = input_sampler(pb)(jax.random.PRNGKey(0), 64)
    rows = np.asarray(pb.X)
    idx = [int(np.argmin(np.sum((rows - x) ** 2, 1))) for x in np.asarray(Xs)]
    np.testing.assert_array_equal(np.asarray(Xs), rows[idx])
    np.testing.assert_array_equal(np.asarray(Ys), np.asarray(pb.Y)[idx])
    W = init(jax.random.PRNGKey(1), 3, 2, pb.tau).particles
    step = build_step(pb, 1)
    keys = jax.random.split(jax.random.PRNGKey(2), 20_000)
    inc = jax.vmap(lambda k: step(k, SGDState(W), pb.beta, 0.01)[0].particles - W)(keys)
    m, se = mean_and_se(np.asarray(inc).reshape(len(keys), -1))
    assert_close_z(m, np.asarray(-0.01 * pb.beta * pb.grad_psi(W, W)).reshape(-1), se, K, "mean increment")
    wide = bolt.make_problem("tanh", teacher, beta=0.7, tau=0.3, inputs=bolt.GaussianInputs(100_000))
    fresh = np.asarray(-0.01 * wide.beta * wide.grad_psi(W, W)).reshape(-1)
    assert np.max(np.abs(m - fresh) / se) > 2 * K  # power: the law SGD used to draw from


# ----------------------------------------------------------------------------- item 8c: the reference flow's SE
def _gauss_risk(pb, mean, var):
    z, wz = np.polynomial.hermite_e.hermegauss(60)
    return float(pb.risk(jnp.asarray(mean + np.sqrt(var) * z)[:, None], jnp.asarray(wz / wz.sum())))


def test_reference_flow_d1_se_is_the_particle_sets_monte_carlo_error():
    """µ* = N(m, s²) given as 200 independent draws, 40 replications: R(µ*_t) at t = 0.6 by the d = 1 quadrature
    scatters around the Gaussian marginal's risk with the reported SE (sd of the z-scores in [0.6, 1.5], the band
    for 40 replications; their mean within 5/√40); SE 0 only for ``exact=True``, and ``ess`` scales it."""
    from bolt.dynamics.sgd import reference_flow

    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.0, tau=0.5)
    m, s2, t, n, reps = 0.4, 0.3, 0.6, 200, 40
    exact = _gauss_risk(pb, t * m, t * t * s2 + pb.tau * t * (1 - t))
    draws = m + np.sqrt(s2) * np.random.default_rng(0).normal(size=(reps, n, 1))
    rows = np.array([np.concatenate(reference_flow(None, pb, P, None, [t])[:2]) for P in draws])
    z = (rows[:, 0] - exact) / rows[:, 1]
    assert np.all(rows[:, 1] > 0)
    assert 0.6 < z.std(ddof=1) < 1.5 and abs(z.mean()) < K / np.sqrt(reps), (z.mean(), z.std(ddof=1))
    r, se, how = reference_flow(None, pb, draws[0], None, [0.0, t], exact=True)
    assert np.all(se == 0) and "Monte Carlo" not in how
    _, se_half, _ = reference_flow(None, pb, draws[0], None, [t], ess=n / 4)
    assert se_half[0] == pytest.approx(2 * rows[0, 1], rel=1e-9)
    _, se0, _ = reference_flow(None, pb, draws[0], None, [0.0])
    assert se0[0] == 0.0  # µ*_0 = δ_0 whatever the particles


@pytest.mark.slow
def test_bridge_json_counts_the_fallbacks_and_judges_the_bound_with_an_se():
    """``bridge_checks`` with the potential drift at β/τ = 800 (16 draws per half): ``ess.jackknife_fallback`` counts
    the path-steps that kept the plain ratio, with its note; drift_bound carries a positive SE and is not "violated"."""
    from bolt.dynamics.bridge import bridge_checks

    _, P, w = _grid_mu()
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=40.0, tau=0.05)
    mean = w @ P
    cov = ((P - mean) * w[:, None]).T @ (P - mean)
    summary = {"kl": 0.1, "kl_se": 0.0, "free_energy": 0.2, "free_energy_se": 0.0, "mean": mean, "covariance": cov}
    out, ds = bridge_checks(jax.random.PRNGKey(0), pb, P, w, summary, n=100, steps=10, drift="potential", inner=32,
                            grid=True, null_reps=2, progress_bar=False)
    assert out["ess"]["jackknife_fallback"] == int(ds["jackknife_fallback"].sum()) > 0
    assert "ESS < 2" in out["ess"]["jackknife_fallback_note"]
    v = {x["name"]: x for x in out["verdicts"]}["drift_bound"]
    assert v["lhs_se"] > 0 and v["outcome"] != "violated", v


def test_dynamics_json_reference_se_follows_the_kind_of_mu_star():
    """``bolt dynamics`` on d = 1: a sampler's particle set gives R(µ*_t) the particles' SE over the run's ESS (the
    summary's ``ess``; half the draws' count doubles the variance), a grid µ* gives SE 0."""
    from bolt.config import check_dynamics, resolve_config
    from bolt.dynamics.sgd import reference_flow
    from bolt.dynamics.tracking import dynamics_checks

    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=0.3, tau=0.09)
    s = check_dynamics({**resolve_config({})["dynamics"], "kind": "sgd", "particles": 4, "steps": 4,
                        "repetitions": 2})
    P = np.random.default_rng(0).normal(0.3, 0.4, size=(40, 1))
    w = np.full(40, 1 / 40)
    summary = {"free_energy": 0.2, "free_energy_se": 0.01, "ess": 20.0}
    kw = dict(records=2, progress_bar=False)
    out, ds = dynamics_checks(jax.random.PRNGKey(0), pb, P, w, summary, s, **kw)
    se = np.asarray(ds["reference_risk_se"])
    _, iid, _ = reference_flow(None, pb, P, w, np.asarray(ds["time"]))
    np.testing.assert_allclose(se, np.sqrt(2.0) * iid, rtol=1e-9)
    assert se[0] == 0.0 and np.all(se[1:] > 0) and out["reference_risk_end_se"] == se[-1]
    out, ds = dynamics_checks(jax.random.PRNGKey(0), pb, P, w, summary, s, grid=True, **kw)
    assert np.all(np.asarray(ds["reference_risk_se"]) == 0.0) and out["reference_risk_end_se"] == 0.0
