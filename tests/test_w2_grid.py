"""W2² standard errors (calibrated over seeds), no silent sliced fallback, the grid solver's extent and
boundary checks, and the grid measure's W2² to γ_τ against closed forms (MATH.md §1, §3)."""

import jax
import numpy as np
import pytest
import scipy.linalg

import bolt
from bolt.closed_forms import gaussian_w2_squared
from bolt.errors import BoltError
from bolt.problem.activations import custom_activation
from bolt.solve import solve
from bolt.transport.w2 import (
    w2_debiased,
    w2_exact,
    w2_gaussian,
    w2_grid_to_prior,
    w2_quantile_1d,
    w2_sliced,
    w2_squared,
)

# σ(x; w) = ⟨w, x⟩: with a linear target f = ⟨a, x⟩, Ψ(w; µ) = ⟨Σ̂(m_µ − a), w⟩, so µ* = N(m, τI) with
# m = (I + βΣ̂)⁻¹ βΣ̂ a (Σ̂ = the input sample's second moment) and W2²(µ*, γ_τ) = |m|² exactly.
LINEAR = custom_activation(lambda x, w: x @ w, "linear", odd=True)


def _linear_fixed_point(pb, a):
    X = np.asarray(pb.X, np.float64)
    S = X.T @ X / len(X)
    d = len(a)
    return np.linalg.solve(np.eye(d) + pb.beta * S, pb.beta * S @ np.asarray(a, np.float64))


def _z_scores(estimator, d, mean, cov, tau, n, reps):
    """z = (estimate − truth)/se over seeds 0..reps−1 (fixed, never tuned)."""
    L = np.linalg.cholesky(cov)
    truth = gaussian_w2_squared(mean, cov, tau)
    z = []
    for seed in range(reps):
        rng = np.random.default_rng(seed)
        x = mean + rng.normal(size=(n, d)) @ L.T
        y = np.sqrt(tau) * rng.normal(size=(n, d))
        est = estimator(x, y)
        z.append((est.w2_squared - truth) / est.se)
    return np.array(z)


# ------------------------------------------------------------------ standard errors


@pytest.mark.statistical
@pytest.mark.parametrize("mean, var", [(0.7, 0.5), (0.3, 2.0)])
def test_quantile_1d_se_is_calibrated(mean, var):
    """1-D quantile W2² of N(m, s²) vs γ_1: over 100 seeds the z-scores have sd ≈ 1 and mean ≈ 0.

    With 100 replications the sd of z is estimated to ±7%, so [0.7, 1.4] is a ≥ 4σ band; the mean
    of z has se 0.1, so |mean z| < 0.5 says the O(log n/n) bias is small against the se.
    """
    z = _z_scores(w2_quantile_1d, 1, np.array([mean]), np.array([[var]]), 1.0, 1000, 100)
    assert 0.7 < z.std(ddof=1) < 1.4, z.std(ddof=1)
    assert abs(z.mean()) < 0.5, z.mean()


@pytest.mark.statistical
@pytest.mark.parametrize("d, reps, mean, cov, groups", [
    (2, 60, [0.6, -0.3], np.diag([0.3, 1.5]), 2),
    (3, 40, [0.6, -0.3, 0.2], np.diag([0.3, 1.5, 1.0]), 2),
    (3, 40, [0.6, -0.3, 0.2], np.diag([0.3, 1.5, 1.0]), 6),
])
def test_debiased_se_is_calibrated(d, reps, mean, cov, groups):
    """Split-sample debiased exact-OT W2² of anisotropic N(m, S) vs γ_1: sd(z) ∈ [0.7, 1.4], mean z ≈ 0,
    with two halves and with six groups (``max_exact`` below n/2: the cheap form for many draws).

    (The plain exact-OT estimate has mean z ≈ +0.6 in the d = 2 case at n = 1000: its upward bias is
    a sizeable fraction of its se, which is why the debiased estimator is the one to report.)
    """
    est = lambda x, y: w2_debiased(x, y, max_exact=-(-1000 // groups))[0]
    if groups > 2:
        assert f"{groups} groups" in est(np.zeros((1000, d)) + 1.0, np.ones((1000, d))).estimator
    z = _z_scores(est, d, np.array(mean), cov, 1.0, 1000, reps)
    assert 0.7 < z.std(ddof=1) < 1.4, z.std(ddof=1)
    assert abs(z.mean()) < 5 / np.sqrt(reps), z.mean()


def test_debiased_returns_its_se_and_exact_has_one():
    rng = np.random.default_rng(0)
    x, y = 0.5 + rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
    est, se = w2_debiased(x, y)
    assert se == est.se and 0 < se < 0.2
    assert 0 < w2_exact(x, y).se < 0.2
    assert 0 < w2_quantile_1d(x[:, 0], y[:, 0]).se < 0.2


# ------------------------------------------------------------------ no silent sliced fallback


def test_w2_squared_subsamples_instead_of_slicing():
    """Above ``max_exact`` the estimate is exact OT on a subsample (said so), with the subsample's larger se."""
    rng = np.random.default_rng(1)
    tau, m = 0.5, np.array([0.8, 0.0, 0.0])
    x = m + np.sqrt(tau) * rng.normal(size=(1200, 3))
    y = np.sqrt(tau) * rng.normal(size=(1200, 3))
    full = w2_squared(x, y, max_exact=2000)
    sub = w2_squared(x, y, max_exact=300)
    assert "sliced" not in sub.estimator and "subsample" in sub.estimator
    assert full.estimator == "exact OT (POT emd)"
    np.testing.assert_allclose(sub.se / full.se, np.sqrt(1200 / 300), rtol=0.3)
    # W2², not sliced W2² (|m|²/3): within 5 se plus the upward small-sample bias of 300-point OT
    assert abs(sub.w2_squared - m @ m) < 5 * sub.se + 0.25, sub
    assert sub.w2_squared > 2 * (m @ m) / 3


@pytest.mark.statistical
def test_sliced_w2_is_a_different_quantity():
    """Sliced W2² of N(m, τI) vs γ_τ is E_θ⟨θ, m⟩² = |m|²/d, not |m|² (within its se + the 1-D bias)."""
    rng = np.random.default_rng(2)
    d, tau, n = 3, 0.5, 4000
    m = np.array([0.8, -0.4, 0.3])
    x = m + np.sqrt(tau) * rng.normal(size=(n, d))
    y = np.sqrt(tau) * rng.normal(size=(n, d))
    s = w2_sliced(x, y)
    assert "sliced" in s.estimator and "not W2" in s.estimator
    bias_bound = 4 * tau * np.log(n) / n  # 1-D empirical W2² bias is O(log n / n)
    assert abs(s.w2_squared - m @ m / d) < 5 * s.se + bias_bound, (s, m @ m / d)
    assert m @ m - s.w2_squared > 10 * s.se  # power: it is far from W2² itself


@pytest.mark.statistical
def test_w2_gaussian_anisotropic_closed_form():
    """Closed form vs the general Gaussian formula (sqrtm) and vs a large-sample debiased estimate."""
    tau = 0.7
    R = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
    S = R @ np.diag([0.2, 1.8]) @ R.T  # anisotropic, not axis-aligned
    m = np.array([0.5, -0.4])
    cf = w2_gaussian(m, S, tau)
    assert cf.se == 0.0
    general = m @ m + np.trace(S) + 2 * tau - 2 * np.trace(scipy.linalg.sqrtm(np.sqrt(tau) * S * np.sqrt(tau))).real
    np.testing.assert_allclose(cf.w2_squared, general, rtol=1e-12)
    np.testing.assert_allclose(cf.w2_squared, gaussian_w2_squared(m, S, tau), rtol=1e-14)
    rng = np.random.default_rng(3)
    x = m + rng.normal(size=(3000, 2)) @ np.linalg.cholesky(S).T
    y = np.sqrt(tau) * rng.normal(size=(3000, 2))
    est, se = w2_debiased(x, y)
    assert abs(est.w2_squared - cf.w2_squared) < 5 * se, (est, cf)


# ------------------------------------------------------------------ grid solver: extent, boundary, resolution


def test_grid_points_guard():
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.0, tau=0.5)
    for pts in (1, 2, -1):
        with pytest.raises(BoltError, match="solver.grid_points"):
            solve(pb, "grid", grid_points=pts)


def test_grid_large_linear_target_erf():
    """erf, f(x) = 20x, τ = 0.1: the mean agrees with a much finer grid on a window chosen by hand;
    the boundary mass is recorded and negligible."""
    pb = bolt.make_problem("erf", bolt.Linear([20.0]), beta=1.0, tau=0.1)
    res = solve(pb, "grid")
    ref = solve(pb, "grid", grid_points=2001, half_width=6.0)
    assert res.converged and res.settings["boundary_mass"] <= 1e-10
    assert res.settings["half_width"] >= 0.1 ** 0.5 * 9 + 20 * 2 / np.sqrt(np.pi)  # β·G with G = 2|a|/√π
    np.testing.assert_allclose(res.mean(), ref.mean(), atol=1e-10)
    assert 1.5 < res.mean()[0] < 1.6


def test_grid_unbounded_unit_reaches_its_fixed_point():
    """σ = ⟨w, x⟩, f = 20x, τ = 0.1: µ* = N(m, τ) with m ≈ 10. The old half-width (9√τ + 2β = 4.85)
    pinned the mean at the edge and still reported converged; now it is exact."""
    pb = bolt.make_problem(LINEAR, bolt.Linear([20.0]), beta=1.0, tau=0.1)
    m = _linear_fixed_point(pb, [20.0])
    res = solve(pb, "grid")
    assert res.converged and res.settings["boundary_mass"] <= 1e-10
    np.testing.assert_allclose(res.mean(), m, atol=1e-10)
    np.testing.assert_allclose(res.covariance(), [[0.1]], atol=1e-10)


def test_grid_widens_when_mass_reaches_the_boundary():
    pb = bolt.make_problem(LINEAR, bolt.Linear([20.0]), beta=1.0, tau=0.1)
    m = _linear_fixed_point(pb, [20.0])
    res = solve(pb, "grid", half_width=4.0, grid_points=201)
    assert res.settings["widenings"] > 0 and res.settings["boundary_mass"] <= 1e-10
    np.testing.assert_allclose(res.mean(), m, atol=1e-10)
    with pytest.raises(BoltError, match="solver.grid_points.*boundary"):
        solve(pb, "grid", half_width=4.0, grid_points=201, max_widenings=0)


def test_grid_refines_a_narrow_fixed_point():
    """erf, f = 20x, β = 5, τ = 0.1: µ* (sd 0.16) is much narrower than the bound-sized grid's cells at
    the default points; the grid is refined until ≥ 2 points per posterior sd (1e-8 error otherwise)."""
    pb = bolt.make_problem("erf", bolt.Linear([20.0]), beta=5.0, tau=0.1)
    res = solve(pb, "grid")
    ref = solve(pb, "grid", grid_points=2001, half_width=6.0)
    assert res.settings["refinements"] > 0 and res.settings["points_per_posterior_sd"] >= 2
    np.testing.assert_allclose(res.mean(), ref.mean(), atol=1e-10)


def _grid_gaussian(z, m, S):
    """The square grid ``z × z`` and the normalised N(m, S) density at its nodes."""
    nodes = np.stack(np.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
    dz = nodes - m
    p = np.exp(-0.5 * np.sum(dz @ np.linalg.inv(S) * dz, 1))
    return nodes, p / p.sum()


def test_grid_resolution_check_uses_the_smallest_posterior_sd():
    """The refinement rule looks at µ*'s smallest standard deviation (the least eigenvalue of its
    covariance): a grid density N(0, R diag(0.1², 1) Rᵀ) rotated by 30° on a 201² grid of spacing 0.05
    (2 points per smallest sd) has smallest sd 0.1 and largest 1, by the trapezoid rule's spectral
    accuracy to 1e-9."""
    from bolt.gibbs.grid import _min_sd

    c, s_ = np.cos(np.pi / 6), np.sin(np.pi / 6)
    R = np.array([[c, -s_], [s_, c]])
    S = R @ np.diag([0.1**2, 1.0]) @ R.T
    nodes, p = _grid_gaussian(np.linspace(-5, 5, 201), np.zeros(2), S)
    assert _min_sd(nodes, p) == pytest.approx(0.1, rel=1e-9)


# ------------------------------------------------------------------ W2² of the grid measure to γ_τ


def test_grid_w2_to_prior_d1_is_exact_quadrature():
    pb = bolt.make_problem(LINEAR, bolt.Linear([0.8]), beta=1.0, tau=0.5)
    m = _linear_fixed_point(pb, [0.8])
    res = solve(pb, "grid")
    est = w2_grid_to_prior(res.particles, res.weights, pb.tau)
    assert est.se == 0.0
    np.testing.assert_allclose(est.w2_squared, m @ m, atol=1e-10)


@pytest.mark.statistical
def test_grid_w2_to_prior_d2_consistent_and_lattice_ot_biased():
    """d = 2, µ* = N(m, τI): the control-variate estimate is within 4 se of |m|²; the old
    lattice-to-lattice exact OT (grid measure vs grid-discretised prior) misses by more than 4 of
    those se (power check), on a coarse but legal grid (≈ 2 points per prior sd)."""
    tau = 1.0
    pb = bolt.make_problem(LINEAR, bolt.Linear([0.5, 0.3]), beta=1.0, tau=tau)
    m = _linear_fixed_point(pb, [0.5, 0.3])
    res = solve(pb, "grid", grid_points=41)
    np.testing.assert_allclose(res.mean(), m, atol=1e-12)
    P, w = res.particles, res.weights
    est = w2_grid_to_prior(P, w, tau, key=jax.random.PRNGKey(0))
    assert abs(est.w2_squared - m @ m) < 4 * est.se, (est, m @ m)
    prior_w = np.exp(-np.sum(P * P, 1) / (2 * tau))
    old = w2_exact(P, P, w, prior_w / prior_w.sum())
    assert old.w2_squared - m @ m > 4 * est.se, (old.w2_squared, m @ m, est.se)


def test_debiased_threads_give_the_serial_answer(monkeypatch):
    """The exact solves of ``w2_debiased`` run on one thread per core; one core gives the same numbers."""
    import os

    from bolt.transport.w2 import w2_debiased

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(480, 3)) + 0.3, 0.8 * rng.normal(size=(480, 3))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    many = w2_debiased(x, y, max_exact=60)[0]  # 8 groups: 8 cross and 8 self solves on 4 threads
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = w2_debiased(x, y, max_exact=60)[0]
    assert "8 groups of 60" in many.estimator
    assert (many.w2_squared, many.se) == (one.w2_squared, one.se)


def test_grid_log_z_and_kl_in_two_dimensions_match_the_linear_unit_closed_form():
    """Linear unit, f = ⟨a, x⟩, d = 2: Γ(µ) = N(−βS(m − a), τI) with S = E_π[xxᵀ], so µ* = N(m, τI) with
    (I + βS)m = βSa, and log Z = KL(µ*‖γ_τ) = |m|²/(2τ). (Every other grid check of log Z is in d = 1,
    where the prior's normaliser has one factor.)"""
    from bolt.estimators.summary import summarize

    a, tau = np.array([0.5, 0.3]), 1.0
    pb = bolt.make_problem(LINEAR, bolt.Linear(a), beta=1.0, tau=tau)
    X = np.asarray(pb.X, np.float64)
    S = X.T @ X / len(X)
    m = np.linalg.solve(np.eye(2) + pb.beta * S, pb.beta * S @ a)
    res = solve(pb, "grid", grid_points=41)
    s = summarize(jax.random.PRNGKey(0), pb, res)
    assert res.settings["log_z"] == pytest.approx(m @ m / (2 * tau), abs=1e-9)
    assert s["kl"] == pytest.approx(m @ m / (2 * tau), abs=1e-9)


@pytest.mark.statistical
def test_grid_w2_to_prior_d2_correlated_gaussian_density_matches_the_closed_form():
    """d = 2, ρ = N(m, S) with a strong correlation and unequal variances sampled on a 61 × 61 grid:
    W2²(ρ, γ_τ) = |m|² + tr S + 2τ − 2√τ tr S^{1/2} (MATH.md §1). The control-variate estimate is within 5 of
    its se (the spread of 16 replications) plus 1e-3 for the O(h²) cell-jitter residual (h = 0.2:
    h²/12 ≈ 3e-3 on the variances, whose shift nearly cancels in D). Its Gaussian draws use the Cholesky factor of
    S (the Knothe–Rosenblatt map of N(m, S)) and the piecewise-constant draws start at each cell's left edge; a
    wrong factor or a half-cell shift moves the estimate by more than 0.05."""
    tau, m = 0.7, np.array([0.8, -0.3])
    S = np.array([[0.25, 0.3], [0.3, 0.5]])
    nodes, p = _grid_gaussian(np.linspace(-6, 6, 61), m, S)
    est = w2_grid_to_prior(nodes, p, tau, key=jax.random.PRNGKey(0))
    truth = gaussian_w2_squared(m, S, tau)
    assert est.se < 0.01, est
    assert abs(est.w2_squared - truth) < 5 * est.se + 1e-3, (est, truth)
