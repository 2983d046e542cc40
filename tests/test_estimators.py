"""Control variates and the KSD test: exactness on Gaussians, zero-mean features, calibrated errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bolt
from bolt.estimators.control_variates import cv_mean, default_degree, stein_error_series, stein_features, stein_weights
from bolt.estimators.ksd import ksd_squared, ksd_test


def _gaussian(rng, n, m, S):
    L = np.linalg.cholesky(S)
    W = m + rng.normal(size=(n, len(m))) @ L.T
    score = -(W - m) @ np.linalg.inv(S)
    return W, score


def test_stein_features_have_mean_zero_under_their_law():
    """E[ΔP + ∇P·s] = 0 for every monomial up to degree 3 (anisotropic, non-centred Gaussian)."""
    rng = np.random.default_rng(0)
    m, S = np.array([0.5, -0.3]), np.array([[0.6, 0.2], [0.2, 0.4]])
    W, s = _gaussian(rng, 200_000, m, S)
    H = stein_features(W, s, degree=3)
    assert H.shape == (200_000, 9)  # 2 + 3 + 4 monomials
    z = H.mean(0) / (H.std(0, ddof=1) / np.sqrt(len(H)))
    assert np.all(np.abs(z) < 5), z


def test_control_variates_are_exact_for_quadratics_under_a_gaussian():
    """With a linear score the Stein images of degree ≤ 2 span every quadratic: zero variance left."""
    rng = np.random.default_rng(1)
    m, S = np.array([0.3, 0.1]), np.array([[0.5, -0.1], [-0.1, 0.3]])
    W, s = _gaussian(rng, 2000, m, S)
    g = 1.0 + W[:, 0] - 2 * W[:, 1] + 0.7 * W[:, 0] * W[:, 1] + W[:, 1] ** 2
    est, se, adj = cv_mean(g, stein_features(W, s, degree=2))
    exact = 1.0 + m[0] - 2 * m[1] + 0.7 * (S[0, 1] + m[0] * m[1]) + S[1, 1] + m[1] ** 2
    assert abs(est - exact) < 1e-8 and se < 1e-8


@pytest.mark.statistical
def test_control_variate_standard_error_is_calibrated():
    """A non-polynomial integrand: over 200 replications (seeds 0..199) the z-scores have sd in [0.8, 1.25]."""
    rng = np.random.default_rng(2)
    m = np.array([0.2, -0.4])
    S = np.array([[0.5, 0.1], [0.1, 0.3]])
    truth_draws, _ = _gaussian(np.random.default_rng(99), 2_000_000, m, S)
    f = lambda W: np.sin(2 * W[:, 0]) + np.tanh(W[:, 1]) * W[:, 0]
    truth = f(truth_draws).mean()
    z = []
    for _ in range(200):
        W, s = _gaussian(rng, 400, m, S)
        est, se, _ = cv_mean(f(W), stein_features(W, s, degree=default_degree(2, 400)))
        z.append((est - truth) / se)
    z = np.asarray(z)
    assert 0.8 <= z.std(ddof=1) <= 1.25 and abs(z.mean()) < 4 / np.sqrt(len(z)), (z.mean(), z.std(ddof=1))


def test_stein_weights_integrate_the_features_to_zero_and_are_cross_fitted():
    """Picard's block weights: they sum to 1 and integrate every feature to zero (odd n: unequal halves),
    so a quadratic integrand under a Gaussian gets its exact mean; each half's weights depend on the
    other half only through its mean features (the coefficients come from the other half: replacing the
    second half by its reflection about its mean leaves the first half's weights as they were)."""
    rng = np.random.default_rng(4)
    m, S = np.array([0.3, 0.1]), np.array([[0.5, -0.1], [-0.1, 0.3]])
    W, s = _gaussian(rng, 2001, m, S)
    H = stein_features(W, s, degree=2)
    a = np.asarray(stein_weights(H))
    assert abs(a.sum() - 1.0) < 1e-12 and np.max(np.abs(a @ np.asarray(H))) < 1e-12
    assert a.min() < 1 / 2001 < a.max()  # not equal weights
    g = 1.0 + W[:, 0] - 2 * W[:, 1] + 0.7 * W[:, 0] * W[:, 1] + W[:, 1] ** 2
    exact = 1.0 + m[0] - 2 * m[1] + 0.7 * (S[0, 1] + m[0] * m[1]) + S[1, 1] + m[1] ** 2
    assert abs(a @ g - exact) < 1e-10
    Hb = np.asarray(H).copy()
    Hb[1000:] = 2 * Hb[1000:].mean(0) - Hb[1000:]
    np.testing.assert_allclose(np.asarray(stein_weights(jnp.asarray(Hb)))[:1000], a[:1000], rtol=1e-9, atol=1e-15)


@pytest.mark.statistical
def test_stein_weights_error_series_is_calibrated():
    """The weighted mean of a mostly quadratic integrand with a non-polynomial part under a Gaussian
    (d = 2, degree 2, 100 draws, 1000 replications; closed-form mean): unbiased (within 0.1 sd), and the
    z-scores from ``stein_error_series`` have sd within 0.15 of 1 (the weights remove the quadratic part,
    so the integrand's own variance would be several times too wide). Measured: bias −0.02 sd, z sd 0.96,
    sd/se 0.79 (the out-of-sample residuals carry the other half's coefficient error: on the safe side);
    with the integrand's own variance in place of the error series, z sd 0.21."""
    m, S = np.array([0.2, -0.4]), np.array([[0.5, 0.1], [0.1, 0.3]])
    f = lambda W: W[:, 0] ** 2 + 0.5 * W[:, 0] * W[:, 1] + 0.3 * jnp.sin(2 * W[:, 0])
    # E sin(2X) = sin(2m) exp(−2s²) for X ~ N(m, s²)
    truth = S[0, 0] + m[0] ** 2 + 0.5 * (S[0, 1] + m[0] * m[1]) + 0.3 * np.sin(2 * m[0]) * np.exp(-2 * S[0, 0])
    rng = np.random.default_rng(3)
    draws = [_gaussian(rng, 100, m, S) for _ in range(1000)]
    W, s = jnp.asarray(np.stack([w for w, _ in draws])), jnp.asarray(np.stack([x for _, x in draws]))
    H = jax.vmap(lambda w, sc: stein_features(w, sc, 2))(W, s)
    g = jax.vmap(f)(W)
    # replications one after another (lax.map), not batched: a vmap of the weights' pinv (1000 batched LAPACK
    # eigendecompositions inside XLA's CPU thread pool) hung twice on 2026-11-30, never in a single-matrix call
    est = np.asarray(jnp.einsum("rn,rn->r", jax.lax.map(stein_weights, H), g))
    se = np.sqrt(np.asarray(jax.lax.map(lambda a: jnp.var(stein_error_series(*a), ddof=1), (g, H))) / 100)
    z = (est - truth) / se
    assert abs(est.mean() - truth) < 0.1 * est.std(), (est.mean() - truth) / est.std()
    assert abs(z.std(ddof=1) - 1.0) < 0.15, z.std(ddof=1)
    assert 0.6 < est.std() / np.sqrt(np.mean(se**2)) < 1.1, est.std() / np.sqrt(np.mean(se**2))
    plain = np.sqrt(np.asarray(jnp.var(g, axis=1, ddof=1)) / 100)
    assert np.mean(plain) > 3 * np.mean(se)  # the weights do remove most of the variance


def test_ksd_test_null_and_power_are_scale_free():
    """Exact draws of N(0, σ²): p-values not small (uniform under the null); a wrong variance is rejected,
    at two scales of the score."""
    test = jax.jit(lambda k, X, S: ksd_test(k, X, S).p_value)
    for sigma in (0.3, 3.0):
        rejected_null, rejected_alt = 0, 0
        for seed in range(20):
            X = sigma * jax.random.normal(jax.random.PRNGKey(seed), (400, 1))
            rejected_null += float(test(jax.random.PRNGKey(100 + seed), X, -X / sigma**2)) < 0.01
            rejected_alt += float(test(jax.random.PRNGKey(100 + seed), X, -X / (2 * sigma) ** 2)) < 0.01
        assert rejected_null <= 3 and rejected_alt >= 15, (sigma, rejected_null, rejected_alt)
    X = jax.random.normal(jax.random.PRNGKey(0), (300, 2))
    np.testing.assert_allclose(float(ksd_test(jax.random.PRNGKey(1), X, -X).statistic), float(ksd_squared(X, -X)),
                               rtol=1e-12)


@pytest.mark.statistical
@pytest.mark.parametrize("rho, chains, draws", [(0.8, 20, 50), (0.5, 1, 400)])
def test_ksd_test_block_bootstrap_is_calibrated_for_autocorrelated_chains(rho, chains, draws):
    """AR(ρ) chains with N(0, 1) marginals, tested against the exact score (200 replications, seeds not
    tuned): with 20 blocks (whole chains, or one chain cut in 20) the p-values are uniform, mean within
    3 SE of ½ and at most 10 % below 5 %. An AR(1) multiplier with the draws' own ρ (the Markov-chain
    wild bootstrap used before) rejected 20–23 % at ρ = 0.8; one multiplier per draw rejects more."""

    @jax.jit
    def p_value(key):
        k1, k2 = jax.random.split(key)
        z = jax.random.normal(k1, (chains, draws))

        def ar(prev, e):
            nxt = rho * prev + np.sqrt(1 - rho**2) * e
            return nxt, nxt

        _, x = jax.lax.scan(ar, z[:, 0], z.T[1:])
        x = jnp.concatenate([z[:, :1], x.T], 1).reshape(-1, 1)
        return ksd_test(k2, x, -x, chains=chains, blocks=20, n_boot=300).p_value

    p = np.array([float(p_value(jax.random.PRNGKey(r))) for r in range(200)])
    assert abs(p.mean() - 0.5) < 3 * np.sqrt(1 / 12 / len(p)) and np.mean(p < 0.05) <= 0.10, \
        (p.mean(), np.mean(p < 0.05))


@pytest.mark.statistical
def test_ksd_test_carries_the_noise_of_an_estimated_score():
    """N(0, 1) draws tested against the score of N(µ̂, 1), µ̂ the mean of 50 other draws (100 replications,
    seeds not tuned): with the score's bootstrap noise the p-values are uniform (mean 0.49 when this was
    written); without it half the replications reject at 5 %; with the noise doubled or halved the mean p
    moves to 0.68 or 0.33."""
    m, nf, nb = 400, 50, 200

    @jax.jit
    def p_values(key, scale):
        k1, k2, k3 = jax.random.split(key, 3)
        x, w = jax.random.normal(k1, (m, 1)), jax.random.normal(k2, (nf, 1))
        e = jax.random.normal(k3, (nf, nb))
        e = e - jnp.mean(e, 0, keepdims=True)
        noise = jnp.broadcast_to((e.T @ w / nf).T[None], (m, 1, nb))  # δ_b = Σ_l e_lb w_l / nf at every x
        s = -(x - jnp.mean(w))
        return jnp.stack([ksd_test(key, x, s, n_boot=nb, score_noise=scale * noise).p_value,
                          ksd_test(key, x, s, n_boot=nb).p_value])

    def run(scale):
        return np.array([np.asarray(p_values(jax.random.PRNGKey(r), scale)) for r in range(100)])

    p = run(1.0)
    assert abs(p[:, 0].mean() - 0.5) < 0.08 and np.mean(p[:, 0] < 0.05) <= 0.12, p[:, 0].mean()
    assert np.mean(p[:, 1] < 0.05) >= 0.3, np.mean(p[:, 1] < 0.05)
    assert run(2.0)[:, 0].mean() > 0.58 and run(0.5)[:, 0].mean() < 0.42


def test_field_sensitivity_of_kl_and_risk_matches_the_formula():
    """d = 1 by quadrature: moving the field µ by δµ moves KL(Γ(µ)‖γ_τ) by (β/τ)² ∫g dδµ and R(Γ(µ))
    by −2(β/τ) ∫g dδµ, g(v) = Cov_{W∼Γ(µ)}(Ψ(W; µ), K(W, v)) — the first-order terms behind
    ``kl_field_se`` and ``risk_field_se`` in ``summarize`` (at the fixed point F = ½R + (τ/β)KL does not
    move)."""
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.5, tau=0.5)
    bt = pb.beta / pb.tau
    w = jnp.linspace(-6, 6, 4001)[:, None]
    h = float(w[1, 0] - w[0, 0])
    v = jnp.linspace(-1.5, 2.0, 40)[:, None]
    a = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, 40))
    a = a / a.sum()
    d = jnp.asarray(np.random.default_rng(1).normal(size=40))
    d = d - d.mean()  # a signed perturbation of total mass 0

    def gibbs(weights):
        psi = pb.psi_field(w, pb.field(v, weights))
        logp = -w[:, 0] ** 2 / (2 * pb.tau) - bt * psi
        p = jnp.exp(logp - logp.max())
        p = p / (p.sum() * h)
        gam = jnp.exp(-w[:, 0] ** 2 / (2 * pb.tau)) / jnp.sqrt(2 * jnp.pi * pb.tau)
        kl = float(jnp.sum(p * jnp.log(p / gam)) * h)
        risk = float(pb.risk(w, p * h / jnp.sum(p * h)))
        return p * h, psi, kl, risk

    p, psi, kl0, r0 = gibbs(a)
    Kwv = pb.kernel(w, v)
    g = ((psi - p @ psi) * p) @ (Kwv - (p @ Kwv)[None, :])  # Cov_Γ(Ψ, K(·, v_j)) by quadrature
    eps = 1e-4
    _, _, kl1, r1 = gibbs(a + eps * d)
    _, _, klm, rm = gibbs(a - eps * d)
    np.testing.assert_allclose((kl1 - klm) / (2 * eps), bt**2 * float(g @ d), rtol=2e-3)
    # R's term has Ψ(·; ν) of ν = Γ(µ) itself in the covariance; at the fixed point (where summarize
    # uses it) ν = µ and the two terms share g
    psi_nu = pb.psi_field(w, pb.field(w, p))
    g_nu = ((psi_nu - p @ psi_nu) * p) @ (Kwv - (p @ Kwv)[None, :])
    np.testing.assert_allclose((r1 - rm) / (2 * eps), -2 * bt * float(g_nu @ d), rtol=2e-3)


def test_summarize_field_noise_se_matches_quadrature():
    """``kl_field_se`` and ``risk_field_se`` of ``summarize`` (from the draws) against an independent
    quadrature: (β/τ)² and 2(β/τ) times sd_{v∼µ*}(g) · sqrt(Σa²), g(v) = Cov_{µ*}(Ψ, K(·, v)), for exact
    iid draws of the d = 1 µ* labelled as a Picard result (buffer 4 × 2000 draws, damping ½, 20 iterations)."""
    from bolt.estimators.summary import summarize
    from bolt.gibbs.picard import field_weights_sq
    from bolt.gibbs.result import SolveResult
    from bolt.solve import solve
    from bolt.testing import exact_gibbs_draws

    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.5, tau=0.5)
    bt = pb.beta / pb.tau
    g = solve(pb, "grid", grid_points=801)
    psi_min = float(np.min(pb.psi_field(g.particles, g.field)))
    x = exact_gibbs_draws(np.random.default_rng(0), pb, g.field, 4000, psi_min)
    res = SolveResult("picard-mala", x, np.full(4000, 1 / 4000), g.field, True, 20,
                      settings=dict(damping=0.5, particles=2000, buffer=4))
    s = summarize(jax.random.PRNGKey(0), pb, res, logz_samples=20_000)
    w, p = jnp.asarray(g.particles), jnp.asarray(g.weights)
    psi = pb.psi_field(w, g.field)
    K = pb.kernel(w, w)
    gv = ((psi - p @ psi) * p) @ (K - (p @ K)[None, :])  # g at every grid node
    sd_g = float(jnp.sqrt(p @ (gv - p @ gv) ** 2))
    sa2 = field_weights_sq("arcsine", 0.5, 2000, 4, 19)  # the buffer after 19 updates (tested against mix)
    # sd(g) from 400 x 4000 draws has a few per cent of Monte Carlo error; ESS ≈ n for iid draws
    np.testing.assert_allclose(s["kl_field_se"], bt**2 * sd_g * np.sqrt(sa2), rtol=0.15)
    np.testing.assert_allclose(s["risk_field_se"], 2 * bt * sd_g * np.sqrt(sa2), rtol=0.15)
    # correlated draws: each of 1000 draws repeated 4 times in a row, as 4 chains of 1000; their ESS is
    # about n/4 and the field's share of the variance grows by n/ESS (µ_K is built from draws as
    # correlated as these), i.e. the SE by about 2
    rep = np.repeat(x[:1000], 4, axis=0)
    res4 = SolveResult("picard-mala", rep, np.full(4000, 1 / 4000), g.field, True, 20,
                       settings=dict(damping=0.5, particles=2000, buffer=4), chains=rep.reshape(4, 1000, 1))
    s4 = summarize(jax.random.PRNGKey(0), pb, res4, logz_samples=20_000)
    assert 500 < s4["ess"] < 1600, s4["ess"]
    np.testing.assert_allclose(s4["kl_field_se"], bt**2 * sd_g * np.sqrt(sa2 * 4000 / s4["ess"]), rtol=0.2)
    # blocks with Stein control-variate weights of degree 2: sd(g) becomes the sd of g's residual after
    # µ*-weighted least squares on [1, Stein images] (quadrature), about 1/5 of sd(g) here
    from bolt.estimators.control_variates import stein_features

    H = np.asarray(stein_features(w, pb.score(w, g.field), 2))
    X = np.column_stack([np.ones(len(H)), H]) * np.sqrt(np.asarray(p))[:, None]
    coef, *_ = np.linalg.lstsq(X, np.asarray(gv) * np.sqrt(np.asarray(p)), rcond=None)
    resid = np.asarray(gv) - np.column_stack([np.ones(len(H)), H]) @ coef
    sd_cv = float(np.sqrt(np.asarray(p) @ resid**2))
    assert sd_cv < 0.4 * sd_g
    cv = SolveResult("picard-mala", x, np.full(4000, 1 / 4000), g.field, True, 20,
                     settings=dict(damping=0.5, particles=2000, buffer=4, field_cv_degree=2))
    s_cv = summarize(jax.random.PRNGKey(0), pb, cv, logz_samples=20_000)
    np.testing.assert_allclose(s_cv["kl_field_se"], bt**2 * sd_cv * np.sqrt(sa2), rtol=0.2)
    np.testing.assert_allclose(s_cv["risk_field_se"], 2 * bt * sd_cv * np.sqrt(sa2), rtol=0.2)


def test_summary_w2_once_and_the_same_when_added_later(monkeypatch):
    """The summary's W2² is the debiased exact OT between the draws and as many prior draws from the
    second half of its key, with the draws' ESS (pinned on draws whose ESS is about n/2);
    ``summarize(w2=False)`` plus :func:`w2_fields` is ``summarize`` to the last digit; and
    ``summarize_to_precision`` solves W2² once, with the key, result and ESS of the summary it keeps."""
    import bolt.estimators.summary as S
    from bolt.gibbs.result import SolveResult
    from bolt.testing import exact_gibbs_draws
    from bolt.transport.w2 import w2_debiased

    pb = bolt.make_problem("erf", bolt.Teacher([[1.0, 0.5]], [1.0]), beta=1.0, tau=0.5)
    rng = np.random.default_rng(5)
    fld = pb.field(jnp.asarray(0.7 * rng.standard_normal((200, 2))), jnp.full(200, 1 / 200))
    x = exact_gibbs_draws(rng, pb, fld, 600, float(np.min(pb.psi_field(jnp.asarray(rng.standard_normal((4000, 2))),
                                                                       fld))) - 1.0)
    key = jax.random.PRNGKey(3)
    xc = np.repeat(x[:300], 2, axis=0)  # 4 "chains" of draws each repeated once: ESS about n/2
    chained = SolveResult("picard-mala", xc, np.full(600, 1 / 600), fld, True, 3, chains=xc.reshape(4, 150, 2),
                          settings=dict(damping=0.7, particles=150, buffer=4))
    full = S.summarize(key, pb, chained, logz_samples=5000)
    assert full["ess"] < 450
    prior = np.sqrt(pb.tau) * np.asarray(jax.random.normal(jax.random.split(key)[1], xc.shape))
    ref = w2_debiased(xc, prior, ess_x=full["ess"])[0]
    assert (full["w2_squared_to_prior"], full["w2_squared_to_prior_se"]) == (float(ref.w2_squared), float(ref.se))
    part = S.summarize(key, pb, chained, logz_samples=5000, w2=False)
    assert "w2_squared_to_prior" not in part
    later = {**part, **S.w2_fields(key, pb, chained, part["ess"])}
    assert json.dumps(later, sort_keys=True) == json.dumps(full, sort_keys=True)  # (NaN fields compare equal)

    res = SolveResult("iid", x, np.full(600, 1 / 600), fld, True, 1)
    keys, w2_args = [], []
    real_s, real_w = S.summarize, S.w2_fields
    monkeypatch.setattr(S, "summarize", lambda k, *a, **kw: keys.append(k) or real_s(k, *a, **kw))
    monkeypatch.setattr(S, "w2_fields", lambda *a: w2_args.append(a) or real_w(*a))
    s, more = S.summarize_to_precision(key, pb, res, target_rel_se=0.002, max_draws=2400, logz_samples=5000)
    assert len(keys) > 1 and len(w2_args) == 1 and len(more.particles) > 600
    k_used, _, r_used, ess_used = w2_args[0]
    assert np.array_equal(np.asarray(k_used), np.asarray(keys[-1])) and r_used is more and ess_used == s["ess"]
    assert s["w2_squared_to_prior_se"] > 0 and s["w2_estimator"].startswith("split-sample debiased")


def test_summary_w2_in_one_dimension_is_the_quantile_estimator():
    """d = 1 draws: W2² to the prior by 1-D quantiles (not the debiased exact OT)."""
    from bolt.estimators.summary import w2_fields
    from bolt.gibbs.result import SolveResult

    pb = bolt.make_problem("erf", bolt.Teacher([[1.0]], [1.0]), beta=1.0, tau=0.5)
    x = 0.8 * np.random.default_rng(2).standard_normal((400, 1))
    res = SolveResult("iid", x, np.full(400, 1 / 400), pb.field(jnp.asarray(x)), True, 1)
    w = w2_fields(jax.random.PRNGKey(0), pb, res, 400.0)
    assert w["w2_estimator"] == "1-D quantiles" and w["w2_squared_to_prior_se"] > 0


@pytest.mark.statistical
def test_summarize_to_precision_draws_until_the_target_or_says_why_not():
    """``output.target_rel_se``: from 400 exact draws of the d = 1 grid µ* (a field known exactly), more
    draws of Γ(µ*) are added until KL and F are at 2 %, and KL is still right (against the grid, within
    4 SE). A Picard result whose µ_K noise alone exceeds the target gets no draws, and says why."""
    from bolt.estimators.summary import summarize, summarize_to_precision
    from bolt.gibbs.result import SolveResult
    from bolt.solve import solve
    from bolt.testing import exact_gibbs_draws

    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.5, tau=0.5)
    g = solve(pb, "grid", grid_points=401)
    truth = summarize(jax.random.PRNGKey(0), pb, g)
    x = exact_gibbs_draws(np.random.default_rng(3), pb, g.field, 400, float(np.min(pb.psi_field(g.particles, g.field))))
    res = SolveResult("iid", x, np.full(400, 1 / 400), g.field, True, 1)
    start = summarize(jax.random.PRNGKey(1), pb, res)
    assert start["kl_se"] / start["kl"] > 0.02  # the target is not met by the draws given
    s, more = summarize_to_precision(jax.random.PRNGKey(1), pb, res, target_rel_se=0.02, max_draws=20_000,
                                     logz_samples=20_000)
    assert s["precision_reached"] and s["precision_note"] == "" and s["draws"] == len(more.particles) > 400
    assert s["kl_se"] / s["kl"] <= 0.02 and s["free_energy_se"] / s["free_energy"] <= 0.02
    assert abs(s["kl"] - truth["kl"]) < 4 * s["kl_se"], (s["kl"], truth["kl"], s["kl_se"])

    # the same draws as a Picard result whose field µ_K averaged blocks of only 50 draws
    pic = SolveResult("picard-mala", x, np.full(400, 1 / 400), g.field, True, 4,
                      settings=dict(damping=0.5, particles=50, buffer=4))
    s, same = summarize_to_precision(jax.random.PRNGKey(2), pb, pic, target_rel_se=0.01, logz_samples=20_000)
    assert s["kl_field_se"] / s["kl"] > 0.01
    assert not s["precision_reached"] and "noise of the field" in s["precision_note"]
    assert same is pic and s["draws"] == len(pic.particles)


def test_degenerate_variance_matches_the_linear_unit_closed_form():
    """Linear unit: K(w, v) = wᵀΣ̂v, and for draws w ∼ N(µ, C) the doubly centred kernel is (w − µ)ᵀΣ̂(v − µ), so
    E[K̄²] = tr((Σ̂C)²) and the U-statistic's degenerate variance is 2 tr((Σ̂C)²)/(n(n − 1)). From 600 draws
    the ratio to it had mean 0.967 (empirical centring's O(1/m) bias) and sd 0.106 over 40 seeds, so the
    mean over 16 draw sets has sd 0.027: |ratio − 1| < 0.15 is 4 sd beyond the bias."""
    from bolt.estimators.summary import _degenerate_variance
    from bolt.problem.activations import custom_activation

    linear = custom_activation(lambda x, w: x @ w, "linear")
    pb = bolt.make_problem(linear, bolt.Linear(np.array([0.8, -0.3])), beta=1.0, tau=0.5,
                           inputs=bolt.SampleInputs(samples=512))
    X = np.asarray(pb.X)
    S, C, n = X.T @ X / len(X), np.array([[0.5, 0.2], [0.2, 0.3]]), 1000.0
    want = 2 * np.trace(S @ C @ S @ C) / (n * (n - 1))
    L = np.linalg.cholesky(C)
    ratios = [_degenerate_variance(pb, np.array([0.3, -0.1]) + np.random.default_rng(s).normal(size=(600, 2)) @ L.T,
                                   n) / want for s in range(100, 116)]
    assert abs(np.mean(ratios) - 1) < 0.15, ratios


def test_default_degree_is_the_highest_up_to_three_whose_monomials_fit():
    """The highest degree in 1..3 whose monomials (1 ≤ |α| ≤ deg) number at most min(40, n/80)."""
    import itertools

    def count(d, deg):
        return sum(1 for a in itertools.product(range(deg + 1), repeat=d) if 1 <= sum(a) <= deg)

    for d in (1, 2, 3, 5):
        for n in (100, 400, 800, 2000, 10_000, 100_000):
            want = max([1] + [deg for deg in (2, 3) if count(d, deg) <= min(40, n / 80)])
            assert default_degree(d, n) == want, (d, n)
