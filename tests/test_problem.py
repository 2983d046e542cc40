"""The problem model against closed forms and Monte Carlo (MATH.md §1)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import erf

import bolt
from bolt.problem import (
    GaussianInputs,
    Linear,
    Realizable,
    SampleInputs,
    Teacher,
    arcsine_kernel,
    arcsine_kernel_grad,
    make_problem,
)
from bolt.testing import assert_close_z, mean_and_se

N_MC = 400_000
TEACHER = Teacher([[1.0, 0.0, 0.0], [0.0, 1.5, 0.0]], [1.0, -0.5])


@pytest.fixture(scope="module")
def X():
    return jax.random.normal(jax.random.PRNGKey(11), (N_MC, 3))


def _points(key, n, d=3, scale=1.0):
    return scale * jax.random.normal(jax.random.PRNGKey(key), (n, d))


@pytest.mark.statistical
def test_arcsine_kernel_matches_monte_carlo(X):
    W, V = _points(1, 4), _points(2, 3, scale=0.7)
    samples = erf(X @ W.T)[:, :, None] * erf(X @ V.T)[:, None, :]
    m, se = mean_and_se(samples)
    assert_close_z(arcsine_kernel(W, V), m, se, what="K")


def _asin_points():
    """[-1, 1] densely and at random, tiny and near-±1 magnitudes, both sides of the branch point ½, and
    random points just above it (where the error of π/2 − 2 asin t is largest)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-1.0, 1.0, 200_001), rng.uniform(-1.0, 1.0, 200_000),
                        rng.uniform(0.5, 0.62, 200_000), np.geomspace(1e-300, 1.0, 4000),
                        1.0 - np.geomspace(1e-16, 0.5, 4000), np.nextafter(0.5, [0.0, 1.0])])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_arcsin_is_within_about_two_ulp(dtype):
    """bolt's polynomial asin (the arcsine kernel's) against the exact value (NumPy's asin in x87
    extended precision; where ``longdouble`` is only double, NumPy's float64 asin and one ulp more), in
    units of the dtype's spacing: measured 2.02 ulp in float64, 2.00 in float32 (XLA's asin: 1.40,
    2.40). Signs, ±1, 0 and NaN as NumPy has them."""
    from bolt.problem.kernels import arcsin

    x = _asin_points().astype(dtype)
    x = x[(np.abs(x) >= np.finfo(dtype).tiny) | (x == 0)]  # XLA flushes subnormals to zero (its asin too)
    got = np.asarray(jax.jit(arcsin)(jnp.asarray(x)))
    assert got.dtype == dtype
    extended = np.finfo(np.longdouble).eps < 1e-18
    ref = np.arcsin(x.astype(np.longdouble if extended else np.float64))
    ulp = np.abs(got.astype(ref.dtype) - ref) / np.spacing(np.abs(ref).astype(dtype) + (ref == 0)).astype(ref.dtype)
    bound = 2.5 if extended else 3.5
    assert ulp.max() <= bound, f"max error {float(ulp.max()):.2f} ulp at x = {x[np.argmax(ulp)]!r}"
    edge = jnp.asarray([1.0, -1.0, 0.0, -0.0, 1.5, -1.5, np.nan], dtype)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(np.asarray(arcsin(edge)), np.arcsin(np.asarray(edge)))
    assert np.signbit(np.asarray(arcsin(edge))[3])


def test_fast_arcsin_derivatives():
    """First and second derivatives through the custom JVP: 1/√(1−x²) and x/(1−x²)^{3/2}."""
    from bolt.problem.kernels import arcsin

    x = np.linspace(-0.999, 0.999, 2001)
    d1 = np.asarray(jax.vmap(jax.grad(arcsin))(jnp.asarray(x)))
    d2 = np.asarray(jax.vmap(jax.grad(jax.grad(arcsin)))(jnp.asarray(x)))
    np.testing.assert_allclose(d1, 1.0 / np.sqrt(1.0 - x * x), rtol=1e-14)
    np.testing.assert_allclose(d2, x / (1.0 - x * x) ** 1.5, rtol=1e-12, atol=1e-13)


def test_arcsine_gradient_matches_autodiff():
    W, V = _points(3, 5), _points(4, 7)
    a = jax.random.uniform(jax.random.PRNGKey(5), (7,))
    auto = jax.grad(lambda w: jnp.sum(arcsine_kernel(w, V) @ a))(W)
    np.testing.assert_allclose(arcsine_kernel_grad(W, V, a), auto, rtol=1e-10, atol=1e-12)


@pytest.mark.statistical
def test_arcsine_gradient_matches_monte_carlo(X):
    w, v = _points(6, 1)[0], _points(7, 1)[0]
    # ∇_w E[erf(<w,X>) erf(<v,X>)] = E[(2/√π) exp(−<w,X>²) X erf(<v,X>)]
    u = X @ w
    samples = (2 / np.sqrt(np.pi)) * np.exp(-(u**2))[:, None] * X * erf(X @ v)[:, None]
    m, se = mean_and_se(samples)
    g = arcsine_kernel_grad(w[None], v[None], jnp.ones(1))[0]
    assert_close_z(g, m, se, what="grad K")


@pytest.mark.statistical
def test_linear_target_ftilde_and_R0(X):
    a = jnp.array([0.5, -1.0, 0.3])
    pb = make_problem("erf", Linear(a), beta=1.0, tau=0.5)
    W = _points(8, 4)
    samples = -(X @ a)[:, None] * erf(X @ W.T)
    m, se = mean_and_se(samples)
    assert_close_z(pb.ftilde(W), m, se, what="linear ftilde")
    m0, se0 = mean_and_se((X @ a) ** 2)
    assert_close_z(pb.R0(), m0, se0, what="linear R0")
    # gradient of the closed-form f̃ against autodiff
    auto = jax.grad(lambda w: jnp.sum(pb.ftilde(w)))(W)
    np.testing.assert_allclose(pb.grad_psi_field(W, pb.field(W[:1], jnp.zeros(1))), auto, atol=1e-12)


@pytest.mark.statistical
def test_realizable_target_ftilde_and_R0(X):
    mean, tau = jnp.array([0.8, -0.4, 0.2]), 0.5
    pb = make_problem("erf", Realizable(mean), beta=1.0, tau=tau)
    f = erf((X @ mean) / jnp.sqrt(1 + 2 * tau * jnp.sum(X * X, -1)))
    np.testing.assert_allclose(pb.target_values(X[:10]), f[:10], rtol=1e-12)
    W = _points(9, 3)
    m, se_x = mean_and_se(-f[:, None] * erf(X @ W.T))
    # f̃ and R0 are deterministic quadratures of the exact f: only the input sample's error remains
    assert_close_z(pb.ftilde(W), m, se_x, what="realizable ftilde")
    m0, se0 = mean_and_se(f**2)
    assert_close_z(pb.R0(), m0, se0, what="realizable R0")


@pytest.mark.statistical
def test_two_routes_agree_for_erf_gaussian():
    closed = make_problem("erf", TEACHER, beta=1.0, tau=0.5)
    n = 100_000
    sample = make_problem("erf", TEACHER, inputs=SampleInputs(n), beta=1.0, tau=0.5, seed=3)
    assert closed.route == "arcsine" and sample.route == "expectation"
    P = _points(10, 64, scale=0.8)
    W = _points(12, 5)
    # per-input summands of the expectation route give its standard error
    resid = sample.fhat(sample.X, P) - sample.Y
    terms = resid[:, None] * erf(sample.X @ W.T)
    _, se = mean_and_se(terms)
    assert_close_z(sample.psi(W, P), closed.psi(W, P), se, what="psi routes")
    dsig = (2 / np.sqrt(np.pi)) * jnp.exp(-((sample.X @ W.T) ** 2))  # erf'(<w, x>)
    gterms = (resid[:, None] * dsig)[:, :, None] * sample.X[:, None, :]
    _, gse = mean_and_se(gterms)
    assert_close_z(sample.grad_psi(W, P), closed.grad_psi(W, P), gse, what="grad psi routes")


@pytest.mark.parametrize("inputs", [None, "sample"])
def test_kernel_grad_sums_are_grad_psi_of_signed_measures(inputs):
    """``kernel_grad_sums(W, V, C)[:, :, b]`` is ∇Ψ(·; Σ_l C_lb δ_{v_l}) without f̃, on both routes, with
    more rows than one chunk."""
    kw = {} if inputs is None else dict(inputs=SampleInputs(512), seed=1)
    pb = make_problem("erf", TEACHER, beta=1.0, tau=0.5, **kw)
    W, V = _points(20, 300), _points(21, 40)
    C = np.asarray(jax.random.normal(jax.random.PRNGKey(22), (40, 3)))
    zero = pb.grad_psi_field(W, pb.field(V, np.zeros(40)))
    want = np.stack([pb.grad_psi_field(W, pb.field(V, C[:, b])) - zero for b in range(3)], -1)
    np.testing.assert_allclose(pb.kernel_grad_sums(W, V, C), want, rtol=1e-10, atol=1e-12)
    small = dataclasses.replace(pb, max_block=64)  # several row chunks
    np.testing.assert_allclose(small.kernel_grad_sums(W, V, C), want, rtol=1e-10, atol=1e-12)


def test_kernel_is_psd():
    for key, route in ((13, "arcsine"), (14, "expectation")):
        inputs = GaussianInputs() if route == "arcsine" else SampleInputs(2000)
        pb = make_problem("erf", TEACHER, inputs=inputs, beta=1.0, tau=0.5)
        W = _points(key, 150, scale=1.5)
        ev = np.linalg.eigvalsh(np.asarray(pb.kernel(W, W)))
        assert ev.min() > -1e-10 * ev.max()


@pytest.mark.statistical
def test_risk_equals_direct_monte_carlo(X):
    pb = make_problem("erf", TEACHER, beta=1.0, tau=0.5)
    P = _points(15, 40, scale=0.9)
    a = jax.random.dirichlet(jax.random.PRNGKey(16), jnp.ones(40))
    f = pb.target_values(X)
    fhat = erf(X @ P.T) @ a
    m, se = mean_and_se((f - fhat) ** 2)
    assert_close_z(pb.risk(P, a), m, se, what="R(mu)")


@pytest.mark.statistical
@pytest.mark.parametrize("n", [4, 32])
def test_maurey_finite_width_identity_at_prior(n):
    """E R(µ̂_N) − R(γ_τ) = (1/N)[E K(W,W) − ∫∫K dγ dγ]; here ∫∫K dγ dγ = 0 (erf is odd)."""
    tau = 0.5
    pb = make_problem("erf", TEACHER, beta=1.0, tau=tau)
    reps = 4000
    W = jnp.sqrt(tau) * jax.random.normal(jax.random.PRNGKey(17 + n), (reps, n, 3))
    risks = jax.vmap(lambda w: pb.risk(w))(W)
    m, se = mean_and_se(risks)
    diag = np.mean(pb.kernel_diag(jnp.sqrt(tau) * jax.random.normal(jax.random.PRNGKey(99), (200_000, 3))))
    excess_theory = diag / n
    r_prior = float(pb.R0())
    assert_close_z(m - r_prior, excess_theory, np.hypot(se, 1e-3 / n), what="Maurey excess")
    # power: the identity without the finite-width term is rejected
    assert abs(m - r_prior) / se > 5


def test_chunked_and_unchunked_agree():
    for inputs in (GaussianInputs(), SampleInputs(512)):
        full = make_problem("erf", TEACHER, inputs=inputs, beta=1.0, tau=0.5)
        small = make_problem("erf", TEACHER, inputs=inputs, beta=1.0, tau=0.5)
        small.max_block = 700  # forces many blocks with ragged padding
        P, W = _points(18, 301), _points(19, 77)
        a = jax.random.dirichlet(jax.random.PRNGKey(20), jnp.ones(301))
        for fn in ("psi", "grad_psi"):
            np.testing.assert_allclose(getattr(small, fn)(W, P, a), getattr(full, fn)(W, P, a), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(small.risk(P, a), full.risk(P, a), rtol=1e-10)
        np.testing.assert_allclose(small.interaction(P, unbiased=True), full.interaction(P, unbiased=True), rtol=1e-10)


def test_self_psi_is_shared_but_keyed_on_contents():
    """The memoised Ψ(w_i; µ̂) equals a fresh evaluation, and a changed atom or weight is never served stale."""
    pb = make_problem("erf", TEACHER, inputs=GaussianInputs(), beta=1.0, tau=0.5)
    P = _points(30, 257)
    a = jax.random.dirichlet(jax.random.PRNGKey(31), jnp.ones(257))
    direct = lambda Q, w=None: np.asarray(pb.psi_field(Q, pb.field(Q, w)))
    np.testing.assert_allclose(pb.self_psi(P), direct(P), rtol=1e-13)
    np.testing.assert_allclose(pb.self_psi(P, a), direct(P, a), rtol=1e-13)
    np.testing.assert_allclose(pb.self_psi(P), direct(P), rtol=1e-13)  # both measures memoised
    P2 = P.at[5, 1].add(1e-3)  # one coordinate of one atom
    assert not np.allclose(pb.self_psi(P2), pb.self_psi(P), rtol=0, atol=1e-12)
    np.testing.assert_allclose(pb.self_psi(P2), direct(P2), rtol=1e-13)
    np.testing.assert_allclose(pb.self_psi(P, a.at[0].add(1e-3)), direct(P, a.at[0].add(1e-3)), rtol=1e-13)
    np.testing.assert_allclose(jax.jit(pb.self_psi)(P, a), direct(P, a), rtol=1e-12)  # traced: no memo
    # the interaction and the risk through it, against the explicit double sum
    K = np.asarray(pb.kernel(P, P))
    np.testing.assert_allclose(pb.interaction(P, a), np.asarray(a) @ K @ np.asarray(a), rtol=1e-12)
    n = len(P)
    np.testing.assert_allclose(pb.interaction(P, unbiased=True), (K.sum() - np.trace(K)) / (n * (n - 1)), rtol=1e-12)


def test_problems_are_freed_and_copies_share_nothing():
    """A problem's compiled methods and memo go with it (no JAX cache keeps it alive), and a copy or a
    dataclasses.replace with other data never gets the original's memoised Ψ or compiled programs."""
    import copy
    import dataclasses
    import gc
    import weakref

    from bolt.bounds import maurey
    from bolt.gibbs.herding import block_gram, herd_field

    refs = []
    for _ in range(3):
        pb = make_problem("tanh", TEACHER, inputs=SampleInputs(512), beta=1.0, tau=0.5)
        pb.ftilde(_points(40, 3))
        pb.self_psi(_points(41, 20))
        refs.append(weakref.ref(pb))
        pb = make_problem("erf", TEACHER, inputs=GaussianInputs(), beta=1.0, tau=0.5)  # herding, Maurey
        fld = pb.field(_points(43, 80))
        herd_field(pb, fld, 10, gram=block_gram(pb, fld, 4))
        maurey(jax.random.PRNGKey(0), pb, _points(44, 30), sizes=(2, 4), reps=8)
        refs.append(weakref.ref(pb))
    del pb, fld
    gc.collect()
    assert all(r() is None for r in refs)
    pb = make_problem("tanh", TEACHER, inputs=SampleInputs(512), beta=1.0, tau=0.5)
    P = _points(42, 50)
    v = np.asarray(pb.self_psi(P))
    for other in (dataclasses.replace(pb, Y=2.0 * pb.Y), copy.copy(pb)):
        other.Y = 2.0 * pb.Y
        fresh = np.asarray(other.psi_field(P, other.field(P)))
        np.testing.assert_allclose(other.self_psi(P), fresh, rtol=1e-13)
        assert not np.allclose(fresh, v)
    np.testing.assert_allclose(pb.self_psi(P), v, rtol=0)


@pytest.mark.parametrize("inputs", [GaussianInputs(), SampleInputs(1024)])
def test_large_n_does_not_allocate_n_by_n(inputs):
    pb = make_problem("erf", TEACHER, inputs=inputs, beta=1.0, tau=0.5)
    n = 20_000
    P = jnp.zeros((n, 3))
    fld = jax.eval_shape(lambda p: pb.field(p), P)
    compiled = jax.jit(lambda p, f: pb.grad_psi_field(p, f)).lower(P, fld).compile()
    mem = compiled.memory_analysis()
    if mem is None:
        pytest.skip("backend reports no memory analysis")
    assert mem.temp_size_in_bytes < n * n * 8 / 20, mem.temp_size_in_bytes


def test_custom_activation_and_callable_target():
    act = bolt.custom_activation(lambda x, w: jnp.tanh(x @ w), "mytanh", odd=True)
    pb = make_problem(act, bolt.CallableTarget(lambda x: jnp.sin(x[0])), dim=2, beta=1.0, tau=0.5,
                      inputs=SampleInputs(256))
    ref = make_problem("tanh", bolt.CallableTarget(lambda x: jnp.sin(x[0])), dim=2, beta=1.0, tau=0.5,
                       inputs=SampleInputs(256))
    P, W = _points(21, 10, 2), _points(22, 4, 2)
    np.testing.assert_allclose(pb.grad_psi(W, P), ref.grad_psi(W, P), rtol=1e-10)
    lsq, how = pb.lipschitz_sq()
    assert how == "estimated"
    # sup over w of E|∇σ|² for tanh is at w = 0: E|X|² over the sample
    np.testing.assert_allclose(lsq, float(jnp.mean(jnp.sum(pb.X**2, -1))), rtol=1e-6)


def test_constants_closed_forms():
    pb = make_problem("erf", TEACHER, beta=1.0, tau=0.5)
    c = pb.constants()
    np.testing.assert_allclose(c["L_sigma_squared"], 4 * 3 / np.pi)
    V = jnp.asarray(TEACHER.weights)
    coef = jnp.asarray(TEACHER.coefficients)
    np.testing.assert_allclose(c["R0"], coef @ arcsine_kernel(V, V) @ coef, rtol=1e-12)
    assert c["risk_at_prior"] == c["R0"] and c["route"] == "arcsine"
    np.testing.assert_allclose(c["kappa"], c["L_sigma_squared"] * c["risk_at_prior"])


def test_public_symbols_have_docstrings():
    import importlib

    mods = [importlib.import_module(m) for m in (
        "bolt", "bolt.problem", "bolt.transport", "bolt.estimators", "bolt.bounds", "bolt.diagnostics", "bolt.io",
        "bolt.gibbs.picard", "bolt.gibbs.mfld", "bolt.gibbs.grid", "bolt.gibbs.mala", "bolt.gibbs.refresh",
        "bolt.estimators.control_variates", "bolt.estimators.ksd", "bolt.estimators.logz", "bolt.testing",
        "bolt.closed_forms",
        "bolt.verdicts", "bolt.dynamics", "bolt.config")]
    for mod in mods:
        for name in mod.__all__:
            obj = getattr(mod, name)
            if callable(obj) and not name.startswith("_"):
                assert obj.__doc__ and obj.__doc__.strip(), f"{mod.__name__}.{name} has no docstring"


def test_import_bolt_is_light():
    import subprocess
    import sys

    code = "import sys, bolt; print(sorted(m for m in ('matplotlib', 'arviz', 'ot', 'ott') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("name", ["erf", "tanh", "erf_bias"])
def test_lipschitz_closed_forms_match_monte_carlo_at_the_maximiser(name):
    """``L_σ² = sup_w E|∇_w σ(X; w)|²`` for X ~ N(0, I_p) is attained at w = 0 for all three built-in units
    (erf: 4p/π; tanh: p; erf with a bias input: 4(p + 1)/π, the bias coordinate's gradient included)."""
    from bolt.problem.activations import ACTIVATIONS

    act, p = ACTIVATIONS[name], 3
    d = p + 1 if name == "erf_bias" else p
    J = act.grad_w(jax.random.normal(jax.random.PRNGKey(0), (200_000, p)), jnp.zeros(d))
    g2 = np.asarray(jnp.sum(J * J, -1))
    assert_close_z(g2.mean(), float(act.lipschitz_sq_gaussian(p)), g2.std(ddof=1) / np.sqrt(len(g2)), 5.0, name)


def test_mix_on_the_expectation_route_is_the_field_of_the_mixture():
    """``mix(old, new, α)`` is the field of (1 − α)µ_old + αµ_new: on the expectation route its f̂ equals that
    of the concatenated, reweighted particles."""
    pb = bolt.make_problem("tanh", bolt.Teacher([[1.0]], [1.0]), beta=1.0, tau=0.5, inputs=bolt.GaussianInputs(256))
    rng = np.random.default_rng(0)
    Pa, Pb, alpha = jnp.asarray(rng.normal(size=(30, 1))), jnp.asarray(1.0 + rng.normal(size=(20, 1))), 0.2
    mixed = pb.mix(pb.field(Pa), pb.field(Pb), alpha)
    ref = pb.field(jnp.concatenate([Pa, Pb]),
                   jnp.concatenate([jnp.full(30, (1 - alpha) / 30), jnp.full(20, alpha / 20)]))
    assert float(jnp.max(jnp.abs(mixed.fhat - ref.fhat))) < 1e-12


def test_realizable_node_network_is_the_gaussian_network():
    """σ = tanh: f(x) = E_{v∼N(m, τ)} tanh(vx) (MATH.md §1, realizable by N(m, τI)); the node network matches
    Gauss–Hermite quadrature of it within its Monte Carlo error (antithetic nodes: SE ≤ sd_v/√(nodes/2))."""
    m, tau, nodes = 0.9, 0.5, 20_000
    pb = bolt.make_problem("tanh", bolt.Realizable([m], nodes=nodes), beta=1.0, tau=tau, inputs=bolt.GaussianInputs(64))
    xs = np.array([0.5, 1.0, 2.0, 3.0])
    got = np.asarray(pb.target_values(jnp.asarray(xs[:, None])))
    t, wt = np.polynomial.hermite_e.hermegauss(80)
    wt, v = wt / wt.sum(), m + np.sqrt(tau) * t
    want = np.array([wt @ np.tanh(v * x) for x in xs])
    sd = np.sqrt(np.array([wt @ np.tanh(v * x) ** 2 for x in xs]) - want**2)
    assert_close_z(got, want, sd / np.sqrt(nodes / 2), 5.0, "node network")


def test_teacher_default_coefficients_are_one_over_the_number_of_units():
    """f = (1/m) Σ_k σ(x; v_k) for m teacher rows, whatever the dimension d."""
    for m, d in ((2, 3), (3, 2)):
        np.testing.assert_allclose(np.asarray(bolt.Teacher(np.ones((m, d))).coefficients), 1.0 / m)


def test_expectation_route_ftilde_kernel_and_r0_are_sample_averages():
    """On the expectation route π is the fixed sample X (n = 256): f̃(w) = −(1/n) Σ_j Y_j σ(X_j; w),
    K(w, v) = (1/n) Σ_j σ(X_j; w) σ(X_j; v) and R0 = (1/n) Σ_j Y_j² exactly (numpy sums, to round-off)."""
    pb = make_problem("tanh", Teacher([[1.0, -0.5]], [1.0]), beta=1.0, tau=0.5, inputs=SampleInputs(256))
    X, Y = np.asarray(pb.X, np.float64), np.asarray(pb.Y, np.float64)
    W, V = np.asarray(_points(31, 5, 2)), np.asarray(_points(32, 3, 2))
    n = X.shape[0]
    np.testing.assert_allclose(pb.ftilde(jnp.asarray(W)), -(np.tanh(X @ W.T).T @ Y) / n, rtol=1e-12)
    np.testing.assert_allclose(pb.kernel(jnp.asarray(W), jnp.asarray(V)), np.tanh(X @ W.T).T @ np.tanh(X @ V.T) / n,
                               rtol=1e-12)
    np.testing.assert_allclose(float(pb.R0()), np.mean(Y * Y), rtol=1e-12)


def test_risk_at_prior_of_a_non_odd_unit_matches_the_closed_form():
    """σ(x; w) = cos⟨w, x⟩ (not odd), f = 0: f̂(x; γ_τ) = E cos⟨W, x⟩ = exp(−τ|x|²/2), so
    R(γ_τ) = (1/n_x) Σ_j exp(−τ|X_j|²) over the problem's fixed sample. ``risk_at_prior`` is a U-statistic over
    4096 prior draws; its SE is 2 sd(h)/√4096 with h(w) = ∫K(w, v) γ_τ(dv) = (1/n_x) Σ_j cos⟨w, X_j⟩
    exp(−τ|X_j|²/2) (Hoeffding), sd(h) measured on 4096 independent draws. Within 5 SE; draws of
    N(0, τ²I) (τ = 0.3) would give (1/n_x) Σ_j exp(−τ²|X_j|²), many SE away."""
    cos = bolt.custom_activation(lambda x, w: jnp.cos(x @ w), "cos")
    tau = 0.3
    pb = make_problem(cos, bolt.CallableTarget(lambda x: 0.0 * x[0]), dim=2, beta=1.0, tau=tau,
                      inputs=SampleInputs(512))
    X = np.asarray(pb.X, np.float64)
    sq = np.sum(X * X, 1)
    exact = np.mean(np.exp(-tau * sq))
    Wd = np.sqrt(tau) * np.asarray(jax.random.normal(jax.random.PRNGKey(5), (4096, 2)), np.float64)
    h = np.cos(Wd @ X.T) @ np.exp(-tau * sq / 2) / len(X)
    se = 2 * h.std(ddof=1) / np.sqrt(4096)
    got = pb.risk_at_prior()
    assert_close_z(got, exact, se, 5.0, "R(gamma_tau) of a non-odd unit")
    assert abs(np.mean(np.exp(-tau * tau * sq)) - exact) > 20 * se  # power: τ² for τ is far outside


@pytest.mark.parametrize("activation, inputs", [("erf", None), ("tanh", "sample"), ("erf_bias", None)])
def test_score_is_the_gradient_of_the_log_density(activation, inputs):
    """``score`` is ∇ ``log_density`` of Γ(µ) exactly (autodiff, rtol 1e-10), on both routes and for a biased
    unit: MALA's Metropolis correction uses the log-density, so a wrong score (e.g. the prior's −w/(2τ) for −w/τ)
    only slows its proposals, and the solvers' agreement with the grid sees it only through the control
    variates and the stopping test, weakly."""
    kw = {} if inputs is None else dict(inputs=SampleInputs(256), seed=3)
    pb = make_problem(activation, TEACHER, beta=1.5, tau=0.4, **kw)
    W, V = _points(30, 50), _points(31, 40)
    fld = pb.field(V, np.full(40, 1.0 / 40))
    want = jax.vmap(jax.grad(lambda w: pb.log_density(w[None, :], fld)[0]))(jnp.asarray(W))
    np.testing.assert_allclose(pb.score(W, fld), want, rtol=1e-10, atol=1e-12)
