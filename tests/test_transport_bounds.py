"""W2 estimators, transport maps and the theory's bounds (MATH.md §1, §3)."""

import jax
import numpy as np
import pytest

import bolt
from bolt.bounds import evaluate_bounds, kl_bound, talagrand
from bolt.closed_forms import gaussian_kl
from bolt.errors import BoltError
from bolt.estimators.summary import summarize
from bolt.solve import solve
from bolt.testing import loglog_slope
from bolt.transport import (
    barycentric_map,
    entropic_map,
    lazy_training,
    monotone_map_1d,
    ot_assignment,
    w2_exact,
    w2_gaussian,
    w2_quantile_1d,
    w2_sliced,
)


@pytest.fixture(scope="module")
def grid_solution():
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.5, tau=0.5)
    res = solve(pb, "grid", grid_points=201)
    return pb, res, summarize(jax.random.PRNGKey(0), pb, res)


def test_talagrand_equality_case_closed_forms():
    """N(m, τI) vs γ_τ: W2² = |m|² = 2τ KL, and the estimators reproduce it."""
    tau, m = 0.5, np.array([0.6, -0.3])
    kl = gaussian_kl(m, tau * np.eye(2), tau)
    np.testing.assert_allclose(kl, m @ m / (2 * tau))
    np.testing.assert_allclose(w2_gaussian(m, tau * np.eye(2), tau).w2_squared, m @ m)
    # 1-D quantile W2 of large samples: exact up to Monte Carlo error
    rng = np.random.default_rng(0)
    n, reps = 4000, 30
    vals = [w2_quantile_1d(m[0] + np.sqrt(tau) * rng.normal(size=n), np.sqrt(tau) * rng.normal(size=n)).w2_squared
            for _ in range(reps)]
    mean, se = np.mean(vals), np.std(vals, ddof=1) / np.sqrt(reps)
    bias_bound = 4 * tau * np.log(n) / n  # the 1-D empirical W2² bias is O(log n / n)
    assert abs(mean - m[0] ** 2) < 5 * se + bias_bound


def test_pot_w2_bias_slope():
    """Exact OT W2² between samples of N(m, τI) and γ_τ: bias above |m|² decays like n^{-a}, a > 0."""
    tau, m = 0.5, np.array([0.5, 0.0, 0.0])
    rng = np.random.default_rng(1)
    ns, bias = [100, 200, 400, 800], []
    for n in ns:
        vals = [w2_exact(m + np.sqrt(tau) * rng.normal(size=(n, 3)), np.sqrt(tau) * rng.normal(size=(n, 3))).w2_squared
                for _ in range(6)]
        bias.append(np.mean(vals) - m @ m)
    assert all(b > 0 for b in bias)  # finite-sample W2² is biased upwards
    slope, se = loglog_slope(ns, bias)
    assert -1.2 < slope < -0.2, (slope, se)


def test_w2_exact_checks_pot_result_and_matches_quantiles():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 1)), rng.normal(size=(300, 1)) + 0.4
    np.testing.assert_allclose(w2_exact(x, y).w2_squared, w2_quantile_1d(x, y).w2_squared, rtol=1e-10)
    assert "sliced" in w2_sliced(x, y).estimator


@pytest.mark.parametrize(
    "args, match",
    [((np.ones((3, 2)), np.ones((3, 3))), "dimensions differ"),
     ((np.ones((0, 2)), np.ones((3, 2))), "empty"),
     ((np.ones((3, 2)), np.ones((3, 2)), np.array([1.0, -1.0, 1.0])), "non-negative")],
)
def test_w2_bad_input(args, match):
    with pytest.raises(BoltError, match=match):
        w2_exact(*args)


def test_sample_maps_against_exact_monotone_map(grid_solution):
    pb, res, _ = grid_solution
    T_exact = monotone_map_1d(pb.tau, res.particles[:, 0], res.weights)
    rng = np.random.default_rng(3)
    n = 800
    W = np.sqrt(pb.tau) * rng.normal(size=(n, 1))
    # draws of µ* by inverse transform of independent uniforms
    Y = T_exact(np.sqrt(pb.tau) * rng.normal(size=n))[:, None]
    inner = np.abs(W[:, 0]) < 1.5 * np.sqrt(pb.tau)  # away from the tails, where sample maps are noisy
    for T_hat in (ot_assignment(W, Y), barycentric_map(W, Y), np.asarray(entropic_map(W, Y, 0.02)(W))):
        err = np.abs(T_hat[:, 0] - T_exact(W[:, 0]))[inner]
        assert np.sqrt(np.mean(err**2)) < 0.1, np.sqrt(np.mean(err**2))
    # power: the identity map is not mistaken for T
    assert np.sqrt(np.mean((W[inner, 0] - T_exact(W[inner, 0])) ** 2)) > 0.2
    lz = lazy_training(pb, W, T_exact(W[:, 0])[:, None])
    assert lz["max_displacement"] >= lz["mean_displacement"] > 0


def test_bounds_hold_on_grid_and_wrong_constants_fail(grid_solution):
    pb, res, s = grid_solution
    bounds = {b.name: b for b in evaluate_bounds(jax.random.PRNGKey(1), pb, res.particles, res.weights, s, grid=True)}
    for name in ("kl_bound", "w2_bound", "talagrand", "maurey_identity", "maurey_slope"):
        assert bounds[name].holds, bounds[name]
    # the oracle inequality is near-tight for a near-Gaussian µ*: never violated, decided only with precision
    assert bounds["oracle"].outcome in ("holds", "inconclusive")
    for name in ("corollary_a", "corollary_b", "corollary_c"):
        assert bounds[name].outcome == "rate" and np.isfinite(bounds[name].lhs)
    assert bounds["corollary_c_explicit"].outcome == "not informative"
    # a quarter of the explicit constant is reported as violated: the checks can fail
    kb = bounds["kl_bound"]
    assert not kl_bound(pb, kb.lhs, 0.0, 0.0, 0.0, constant=kb.constant / 4).holds
    tb = bounds["talagrand"]
    assert not talagrand(pb, tb.rhs, 0.0, tb.lhs / tb.constant, 0.0, constant=4 * tb.constant).holds
    # the Maurey slope is -1
    assert abs(bounds["maurey_slope"].lhs + 1) < 4 * bounds["maurey_slope"].lhs_se + 0.05


def test_realizable_bound_entry():
    pb = bolt.make_problem("erf", bolt.Realizable([0.9]), beta=1.0, tau=0.5)
    res = solve(pb, "grid", grid_points=201)
    s = summarize(jax.random.PRNGKey(0), pb, res)
    bounds = {b.name: b for b in evaluate_bounds(jax.random.PRNGKey(1), pb, res.particles, res.weights, s, grid=True)}
    rr = bounds["realizable_risk"]
    # |m|²/β = 0.81 exceeds R(γ_τ), which R(µ*) never exceeds: the check cannot fail here
    assert np.isclose(rr.rhs, 0.81) and rr.outcome == "not informative"
    assert rr.lhs <= rr.rhs


@pytest.mark.statistical
def test_debiased_w2_removes_most_of_the_sample_bias():
    from bolt.transport.w2 import w2_debiased

    tau, m = 0.5, np.array([0.4, 0.0, 0.0])
    rng = np.random.default_rng(4)
    deb, plain = [], []
    for _ in range(6):
        x = m + np.sqrt(tau) * rng.normal(size=(800, 3))
        y = np.sqrt(tau) * rng.normal(size=(800, 3))
        deb.append(w2_debiased(x, y)[0].w2_squared)
        plain.append(w2_exact(x, y).w2_squared)
    se = np.std(deb, ddof=1) / np.sqrt(len(deb))
    assert abs(np.mean(deb) - m @ m) < 5 * se
    # the plain estimate's bias is far outside that error bar: the debiasing is doing the work
    assert np.mean(plain) - m @ m > 5 * np.std(plain, ddof=1) / np.sqrt(len(plain))


def test_monotone_map_pushes_the_prior_to_mu():
    """T = F_µ^{-1} ∘ F_{γ_τ} for µ = N(m, s²) given on a fine grid: T(√τ q) = m + s q (τ ≠ 1 so that
    x/τ and x/√τ differ). Built independently of the map, unlike the sample-map test above."""
    from scipy.stats import norm

    tau, m, s = 0.5, 0.4, 0.6
    z = np.linspace(-6, 6, 2001)
    w = np.exp(-((z - m) ** 2) / (2 * s**2))
    q = norm.ppf(np.linspace(0.05, 0.95, 19))
    T = monotone_map_1d(tau, z, w)
    np.testing.assert_allclose(T(np.sqrt(tau) * q), m + s * q, atol=2 * (z[1] - z[0]))


def test_maurey_resampled_risks_use_one_key_per_width():
    """The widths' resampled risks (one program for all widths) are, width by width, those of width
    ``sizes[i]`` drawn with ``fold_in(key, i)`` by the weights' inverse CDF, written out again here."""
    import jax.numpy as jnp

    from bolt.bounds import _resampled_risks

    pb = bolt.make_problem("erf", bolt.Teacher([[1.0, 0.0], [0.0, 1.5]], [1.0, -0.5]), beta=1.0, tau=0.5)
    rng = np.random.default_rng(1)
    P = jnp.asarray(0.7 * rng.standard_normal((50, 2)))
    w = jnp.asarray(rng.uniform(0.5, 1.5, 50))
    w = w / w.sum()
    ft, r0, cdf, key = pb.ftilde(P), pb.R0(), jnp.cumsum(w), jax.random.PRNGKey(4)
    got = _resampled_risks(pb, P, ft, r0, cdf, key, 8, (2, 3, 5))
    for i, n in enumerate((2, 3, 5)):
        u = np.asarray(jax.random.uniform(jax.random.fold_in(key, i), (8, n), cdf.dtype)) * float(cdf[-1])
        idx = np.minimum(np.searchsorted(np.asarray(cdf), u, side="right"), 49)
        want = [float(r0) + 2 * float(np.mean(np.asarray(ft)[j])) + float(np.mean(pb.kernel(P[j], P[j]))) for j in idx]
        np.testing.assert_allclose(np.asarray(got[i]), want, rtol=1e-12, atol=1e-14)


def test_bounds_compute_w2_for_a_summary_without_it(grid_solution):
    """A summary from an older bolt (no W2² fields): the bounds estimate W2² themselves, and on the d = 1
    grid (exact quadrature) the W2 checks come out as with the summary's own W2²."""
    pb, res, s = grid_solution
    old = {k: v for k, v in s.items() if not k.startswith("w2_")}
    args = (jax.random.PRNGKey(1), pb, res.particles, res.weights)
    new_b = {b.name: b for b in evaluate_bounds(*args, s, grid=True)}
    old_b = {b.name: b for b in evaluate_bounds(*args, old, grid=True)}
    for name in ("w2_bound", "talagrand"):
        assert (old_b[name].lhs, old_b[name].rhs, old_b[name].estimator) == \
            (new_b[name].lhs, new_b[name].rhs, new_b[name].estimator), name
