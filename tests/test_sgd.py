"""Online SGD, greedy McKean–Vlasov and ``bolt dynamics`` (MATH.md §4, "Greedy approximations").

Tolerances are k = 5 standard errors from the CLT over independent repetitions (STYLE.md §5), never
tuned seeds; every closed-form check has a power check beside it (the wrong answer must fail).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bolt
from bolt.dynamics.sgd import build_step, greedy_cost, init, network_risk, run_greedy, run_sgd
from bolt.errors import BoltError
from bolt.testing import assert_close_z, mean_and_se

K = 5.0


# ----------------------------------------------------------------------------- linear unit: exact mean dynamics
def _linear_problem(a, tau):
    lin = bolt.custom_activation(lambda x, w: x @ w, "linear")
    return bolt.make_problem(lin, bolt.Linear(a), dim=len(a), beta=1.0, tau=tau)


def linear_sgd_moments(a, tau, N, c, n, B, X):
    r"""Exact E[ē_n] and E R_N(W_n) for SGD with σ(x; w) = ⟨w, x⟩, f = ⟨a, x⟩, inputs drawn from the rows of X.

    The linear unit has no closed-form kernel: the problem is on the expectation route, π is the empirical law
    of its fixed input sample X (n_x, p), and SGD resamples its rows. Every neuron receives the same increment,
    so only the mean weight w̄ moves: ``ē_{k+1} = (I − c Ŝ) ē_k`` with ``ē = w̄ − a``, ``c = ηβ``,
    ``Ŝ = (1/B)Σ_b X_b X_bᵀ``; with ``S = E Ŝ = XᵀX/n_x`` and
    ``E[Ŝ C Ŝ] = (1 − 1/B) S C S + (1/B) mean_j x_j x_jᵀ C x_j x_jᵀ``:
    ``E ē_n = −(I − cS)^n a`` and ``C_{k+1} = C_k − c(S C_k + C_k S) + c² E[Ŝ C_k Ŝ]`` for ``C = E ē ēᵀ``,
    ``C_0 = a aᵀ + (τ/N) I`` (w̄_0 ~ N(0, τ/N · I)); ``R_N(W) = ēᵀ S ē``, so ``E R_N(W_n) = tr(S C_n)``.
    (For X ~ N(0, I) fresh each step this is Isserlis' ``ρ^n (|a|² + pτ/N)``, ``ρ = 1 − 2c + c²(1 + (p + 1)/B)``.)
    """
    a, X = np.asarray(a, np.float64), np.asarray(X, np.float64)
    p, nx = len(a), len(X)
    S = X.T @ X / nx
    mean_e = -np.linalg.matrix_power(np.eye(p) - c * S, n) @ a
    C = np.outer(a, a) + tau / N * np.eye(p)
    for _ in range(n):
        q = np.einsum("ji,jm,j->im", X, X, np.einsum("jk,kl,jl->j", X, C, X)) / nx
        C = C - c * (S @ C + C @ S) + c * c * ((1 - 1 / B) * S @ C @ S + q / B)
    return mean_e, float(np.trace(S @ C)), S


@pytest.mark.parametrize("B", [1, 4])
def test_linear_sgd_mean_dynamics_closed_form(B):
    """Averaged over 3000 independent networks, E w̄_n and E R_N(W_n) match the closed form over the problem's
    input sample (5 SE); a factor 2 in the step, a flipped sign, √τ for τ or a missing minibatch average would
    not. R_N recorded by run_sgd is exactly ēᵀSē."""
    a, tau, N, eta, beta, n, reps = np.array([1.0, -0.5]), 0.25, 2, 0.1, 1.5, 12, 3000
    pb = _linear_problem(a, tau)
    X = np.asarray(pb.X)
    res = run_sgd(jax.random.PRNGKey(0), pb, N, n, eta=eta, beta=beta, minibatch=B, repetitions=reps, records=n,
                  progress_bar=False)
    e = res.final.mean(axis=1) - a[None, :]  # (reps, p)
    mean_e, mean_r, S = linear_sgd_moments(a, tau, N, eta * beta, n, B, X)
    r = np.einsum("ri,ij,rj->r", e, S, e)
    np.testing.assert_allclose(res.risk[:, -1], r, rtol=1e-10)
    m, se = mean_and_se(e)
    assert_close_z(m, mean_e, se, K, "E (w̄_n − a)")
    mr, ser = mean_and_se(r)
    assert_close_z(mr, mean_r, ser, K, "E R_N(W_n)")
    # power: the closed form of a wrong update is far outside the error bar
    for wrong in (linear_sgd_moments(a, tau, N, 2 * eta * beta, n, B, X)[1],     # ×2 step
                  linear_sgd_moments(a, np.sqrt(tau), N, eta * beta, n, B, X)[1],  # √τ for τ
                  linear_sgd_moments(a, tau, N, eta * beta, n, 4 * B if B == 1 else 1, X)[1]):  # minibatch mean
        assert abs(mr - wrong) > K * ser, (mr, wrong, ser)
    assert np.all(np.abs(m - linear_sgd_moments(a, tau, N, -eta * beta, n, B, X)[0]) > K * se)  # sign flip


# ----------------------------------------------------------------------------- R_N on the arcsine route
def test_network_risk_is_mc_risk_of_the_width_n_network():
    """R_N(W) (closed form, i = j terms included) = E_π(f − f̂_N)² by direct Monte Carlo over 400 000 inputs;
    the U-statistic (the risk of the law the W were drawn from) differs visibly at N = 4."""
    pb = bolt.make_problem("erf", bolt.Teacher([[1.0, 0.5], [-0.5, 1.0]], [1.0, -0.7]), beta=1.0, tau=0.5)
    W = jnp.asarray(np.random.default_rng(0).normal(size=(4, 2)))
    X = jax.random.normal(jax.random.PRNGKey(1), (400_000, 2))
    sq = (pb.target_values(X) - jnp.mean(pb.sigma(X, W), 1)) ** 2
    m, se = mean_and_se(np.asarray(sq))
    rn = float(network_risk(pb, W))
    assert_close_z(rn, m, se, K, "R_N vs MC")
    assert abs(float(pb.risk(W, unbiased=True)) - m) > 10 * se  # power: the U-statistic is another quantity


def test_run_sgd_records_network_risk_at_start_and_end():
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=0.5, tau=0.1)
    res = run_sgd(jax.random.PRNGKey(3), pb, 7, 25, records=4, repetitions=3, progress_bar=False)
    assert list(res.steps) == [0, 7, 14, 21, 25] and np.allclose(res.times, res.steps / 25)
    for r in range(3):
        assert res.risk[r, 0] == pytest.approx(float(network_risk(pb, res.initial[r])), rel=1e-12)
        assert res.risk[r, -1] == pytest.approx(float(network_risk(pb, res.final[r])), rel=1e-12)
    assert res.loss.shape == (3, 25)


def test_step_is_euler_step_of_greedy_flow_in_mean():
    """E[W_{k+1} − W_k | W_k] = −ηβ∇Ψ(W_k; µ̂_W) (the sign and scaling of the update), by 20 000 steps from one W."""
    pb = bolt.make_problem("erf", bolt.Teacher([[1.0, 0.0]], [1.0]), beta=0.7, tau=0.3)
    W = init(jax.random.PRNGKey(0), 3, 2, 0.3).particles
    step = build_step(pb, 1)
    keys = jax.random.split(jax.random.PRNGKey(1), 20_000)
    inc = jax.vmap(lambda k: step(k, bolt.dynamics.sgd.SGDState(W), 0.7, 0.01)[0].particles - W)(keys)
    m, se = mean_and_se(np.asarray(inc).reshape(len(keys), -1))
    expect = np.asarray(-0.01 * 0.7 * pb.grad_psi(W, W)).reshape(-1)
    assert_close_z(m, expect, se, K, "mean increment")
    assert np.max(np.abs(m + expect) / se) > K  # power: the flipped sign


# ----------------------------------------------------------------------------- determinism, independence
def test_same_seed_same_trajectory_and_independent_repetitions():
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=0.5, tau=0.1)
    kw = dict(records=5, progress_bar=False)
    a = run_sgd(jax.random.PRNGKey(5), pb, 10, 200, repetitions=6, **kw)
    b = run_sgd(jax.random.PRNGKey(5), pb, 10, 200, repetitions=6, **kw)
    np.testing.assert_array_equal(a.risk, b.risk)
    np.testing.assert_array_equal(a.final, b.final)
    # a repetition does not depend on how many run beside it, nor on the recording stride
    c = run_sgd(jax.random.PRNGKey(5), pb, 10, 200, repetitions=2, records=50, progress_bar=False)
    np.testing.assert_allclose(c.final, a.final[:2], rtol=1e-12)
    # repetitions are independent: distinct draws, and per-step losses uncorrelated across repetitions
    assert len({float(x) for x in a.initial[:, 0, 0]}) == 6
    z = (a.loss - a.loss.mean(1, keepdims=True)) / a.loss.std(1, keepdims=True)
    corr = (z @ z.T) / a.loss.shape[1]
    off = corr[~np.eye(6, dtype=bool)]
    assert np.max(np.abs(off)) < K / np.sqrt(a.loss.shape[1]), off
    d = run_sgd(jax.random.PRNGKey(6), pb, 10, 200, repetitions=6, **kw)
    assert not np.allclose(d.risk, a.risk)


# ----------------------------------------------------------------------------- law of large numbers
def test_sgd_tracks_greedy_flow_at_large_n_small_eta():
    """N = 1000, η = 1/500, τ = 1e-6: SGD's mean R_N(W_k) over 8 repetitions follows the greedy McKean–Vlasov
    risk flow (same Euler grid) within 5 SE of the spread over repetitions (law of large numbers); the greedy
    flow of 2β is far away (power). (What remains is an O(η) upward bias of SGD's noise, ~1 SE here.)"""
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.0, tau=1e-6)
    s = run_sgd(jax.random.PRNGKey(0), pb, 1000, 500, repetitions=8, records=10, progress_bar=False)
    g = run_greedy(jax.random.PRNGKey(1), pb, 1000, 500, repetitions=1, save_times=s.times, progress_bar=False)
    m, se = mean_and_se(s.risk)
    assert_close_z(m, g.risk[0], se, K, "SGD vs greedy risk flow")
    assert m[-1] < m[0] - 0.1  # the flow moves
    pb2 = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=2.0, tau=1e-6)
    g2 = run_greedy(jax.random.PRNGKey(1), pb2, 1000, 500, repetitions=1, save_times=s.times, progress_bar=False)
    assert np.max(np.abs(m[1:] - g2.risk[0, 1:]) / se[1:]) > 10 * K


# ----------------------------------------------------------------------------- J ≥ βF
@pytest.fixture(scope="module")
def grid_1d():
    from bolt.estimators.summary import summarize
    from bolt.solve import solve

    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.5, tau=0.5)
    res = solve(pb, "grid", grid_points=201)
    return pb, res, summarize(jax.random.PRNGKey(0), pb, res)


def test_greedy_J_not_below_beta_F_and_perturbed_control_detected(grid_1d):
    """The optimal control is optimal: J(greedy McKean–Vlasov) ≥ βF(µ*) (never 'violated'); a perturbed
    control (the greedy drift ×2) is detected as worse beyond 5 SE."""
    from bolt.dynamics.costs import cost_J
    from bolt.dynamics.sde import function_drift, simulate
    from bolt.verdicts import verdict

    pb, res, sm = grid_1d
    beta_f = pb.beta * sm["free_energy"]
    g = run_greedy(jax.random.PRNGKey(2), pb, 500, 50, repetitions=4, save_times=(1.0,), progress_bar=False)
    c = greedy_cost(pb, g)
    v = verdict("greedy", beta_f, c["J"], 0.0, c["J_se"])
    assert v.outcome == "holds", v  # J(greedy) − βF ≈ 0.04 ≈ 8 SE here
    def doubled(W, t):  # the greedy drift ×2, interacting within each of the 4 groups of 500
        G = W.reshape(4, 500, 1)
        return -2 * pb.beta * jax.vmap(lambda V: pb.grad_psi(V, V))(G).reshape(W.shape)

    two = function_drift(doubled)
    r2 = simulate(jax.random.PRNGKey(3), two, pb.tau, 2000, 1, steps=50, save_times=(1.0,), power=1.0,
                  progress_bar=False)
    c2 = cost_J(pb, r2)
    v2 = verdict("perturbed", beta_f, c2["J"], 0.0, c2["J_se"], k=K)
    assert v2.outcome == "holds" and c2["J"] > c["J"], (v2, c["J"])


# ----------------------------------------------------------------------------- bolt dynamics RUN_DIR
@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    from bolt.cli import main

    d = tmp_path_factory.mktemp("dyn")
    cfg = d / "c.toml"
    cfg.write_text("""
[problem]
dim = 1
[problem.target]
kind = "teacher"
weights = [[1.5]]
[regularization]
beta = 0.3
tau = 0.09
[solver]
method = "grid"
grid_points = 101
[output]
report = false
bounds = false
[dynamics]
particles = 40
steps = 100
repetitions = 3
""")
    assert main(["run", str(cfg), "--out", str(d / "out"), "--quiet"]) == 0
    return d / "out"


DYN_KEYS = ("deviation", "deviation_se", "frozen_deviation", "frozen_deviation_se", "greedy_deviation",
            "greedy_deviation_se", "reference_risk_start", "reference_risk_end", "greedy_J", "greedy_J_se", "beta_F",
            "beta_F_se", "greedy_w2_squared", "settings", "verdicts")


def test_cli_dynamics_smoke_writes_json_nc_and_report(grid_run, capsys):
    import arviz as az

    from bolt.cli import main

    assert main(["dynamics", str(grid_run), "--greedy-steps", "20", "--records", "10"]) == 0
    assert "frozen network" in capsys.readouterr().out
    out = json.loads((grid_run / "dynamics.json").read_text())
    for k in DYN_KEYS:
        assert k in out and out[k] is not None, k
    s = out["settings"]
    assert (s["particles"], s["steps"], s["repetitions"], s["step_size"], s["horizon"]) == (40, 100, 3, 0.01, 1.0)
    assert out["reference_risk_start"] == pytest.approx(float(bolt.make_problem(
        "erf", bolt.Teacher([[1.5]], [1.0]), beta=0.3, tau=0.09).R0()), rel=1e-12)  # µ*_0 = δ_0, f̂ ≡ 0
    assert out["frozen_deviation"] > out["deviation"]
    ds = az.from_netcdf(grid_run / "dynamics.nc").dynamics
    assert ds["sgd_risk"].dims == ("repetition", "record") and ds["sgd_risk"].shape == (3, 11)
    assert ds["greedy_risk"].shape == (3, 11) and ds["reference_risk"].shape == (11,)
    assert not list(grid_run.glob(".*.tmp"))
    assert main(["report", str(grid_run)]) == 0
    assert "id='dynamics'" in (grid_run / "report.html").read_text()
    # CLI flags override [dynamics]; a sgd-only run leaves the greedy keys empty
    assert main(["dynamics", str(grid_run), "--kind", "sgd", "--particles", "5", "--quiet", "--records", "4"]) == 0
    out = json.loads((grid_run / "dynamics.json").read_text())
    assert out["settings"]["particles"] == 5 and out["greedy_J"] is None and out["deviation"] is not None


@pytest.mark.parametrize("args, msg", [
    (["--particles", "0"], "dynamics.particles: must be at least 1"),
    (["--steps", "0"], "dynamics.steps: must be at least 1"),
    (["--repetitions", "0"], "dynamics.repetitions"),
    (["--minibatch", "0"], "dynamics.minibatch"),
    (["--step-size", "0.02"], "allow_any_horizon"),
    (["--step-size", "-1"], "dynamics.step_size"),
])
def test_cli_dynamics_bad_settings_are_one_line_errors(grid_run, capsys, args, msg):
    from bolt.cli import main

    before = (grid_run / "dynamics.json").read_text() if (grid_run / "dynamics.json").exists() else None
    assert main(["dynamics", str(grid_run), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bolt: error:") and msg in err, err
    after = (grid_run / "dynamics.json").read_text() if (grid_run / "dynamics.json").exists() else None
    assert before == after  # bad settings touch nothing
    assert not (grid_run / ".bolt.lock").exists()


def test_cli_dynamics_horizon_flag_and_missing_run_dir(grid_run, tmp_path, capsys):
    from bolt.cli import main

    assert main(["dynamics", str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "no run directory" in capsys.readouterr().err
    assert main(["dynamics", str(tmp_path), "--quiet"]) == 2
    assert "not a bolt run directory" in capsys.readouterr().err
    assert main(["dynamics", str(grid_run), "--quiet", "--kind", "sgd", "--steps", "20", "--step-size", "0.025",
                 "--allow-any-horizon", "--particles", "4", "--records", "4"]) == 0
    out = json.loads((grid_run / "dynamics.json").read_text())
    assert out["settings"]["horizon"] == pytest.approx(0.5)


def test_dynamics_config_section_validated():
    from bolt.config import resolve_config
    from bolt.errors import ConfigError

    cfg = resolve_config({})
    assert cfg["dynamics"]["kind"] == "both" and cfg["dynamics"]["step_size"] == 0.0
    for bad, msg in (({"kind": "adam"}, "dynamics.kind"), ({"particles": 0}, "dynamics.particles"),
                     ({"steps": 1.5}, "expected an integer"), ({"step_size": 0.5, "steps": 10}, "allow_any_horizon"),
                     ({"speed": 1}, "dynamics.speed: unknown key")):
        with pytest.raises(ConfigError, match=msg):
            resolve_config({"dynamics": bad})
    ok = resolve_config({"dynamics": {"step_size": 0.5, "steps": 10, "allow_any_horizon": True}})
    assert ok["dynamics"]["allow_any_horizon"] is True


def test_run_sgd_bad_arguments():
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=0.5, tau=0.1)
    for kw, msg in (({"n": 0}, "particles"), ({"steps": 0}, "steps"), ({"repetitions": 0}, "repetitions"),
                    ({"minibatch": 0}, "minibatch"), ({"eta": -0.1}, "step_size")):
        args = {"n": 3, "steps": 5, **kw}
        with pytest.raises(BoltError, match=msg):
            run_sgd(jax.random.PRNGKey(0), pb, args.pop("n"), args.pop("steps"), progress_bar=False, **args)


def test_study_smoke(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, str(root / "studies/sgd_tracking/run.py"), "--smoke", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "results.json").read_text())
    assert len(res["rows"]) >= 3 and (tmp_path / "sgd_tracking.png").exists()
    for row in res["rows"]:  # SGD moves with µ*_t; the frozen network does not
        se = np.hypot(row["frozen_deviation_se"], row["deviation_se"])
        assert row["frozen_deviation"] - row["deviation"] > 3 * se, row


# ----------------------------------------------------------------------------- reference flow R(µ*_t)
def test_reference_flow_d1_equals_gaussian_marginal_risk():
    """For µ* = N(m, s²) (on fine atoms) the flow's marginal is N(t m, t² s² + τ t(1 − t)) (MATH.md §4): R(µ*_t) by
    the mixture quadrature equals R of that Gaussian by 60-node Gauss–Hermite to 1e-9 (t < 1: the grid branch);
    τ ↔ √τ in the bridge variance, or the atoms' own law (no bridge noise), would differ by far more."""
    from bolt.dynamics.path import bridge_marginal_moments
    from bolt.dynamics.sgd import reference_flow

    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.0, tau=0.5)
    m, s2 = 0.4, 0.3
    y = np.linspace(m - 12 * np.sqrt(s2), m + 12 * np.sqrt(s2), 801)
    a = np.exp(-((y - m) ** 2) / (2 * s2))
    a /= a.sum()
    z, wz = np.polynomial.hermite_e.hermegauss(60)
    wz = wz / wz.sum()

    def gauss_risk(mean, var):
        return float(pb.risk(jnp.asarray(mean + np.sqrt(var) * z)[:, None], jnp.asarray(wz)))

    ts = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    r, se, _ = reference_flow(None, pb, y[:, None], a, ts, exact=True)  # the atoms are a quadrature of µ*
    assert np.all(se == 0)
    for t, rt in zip(ts, r):
        mu, cov = bridge_marginal_moments([m], [[s2]], t, pb.tau)
        assert rt == pytest.approx(gauss_risk(mu[0], cov[0, 0]), abs=1e-9), t
        if 0 < t < 1:
            wrong = t * t * s2 + np.sqrt(pb.tau) * t * (1 - t)  # √τ for τ
            assert abs(rt - gauss_risk(mu[0], wrong)) > 1e-4
            assert abs(rt - gauss_risk(t * m, t * t * s2)) > 1e-3


def test_reference_flow_gauss_hermite_branch_agrees_with_grid():
    """Near t = 1 (a narrow kernel on a wide support, where the fallback is used) atoms × 8 Gauss–Hermite nodes
    agree with a fine grid to 1e-8."""
    from bolt.dynamics.sgd import _mixture_grid_1d

    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=1.0, tau=0.5)
    y = np.random.default_rng(0).normal(0.3, 0.5, 200)
    a = np.full(200, 1 / 200)
    for t in (0.97, 0.995):
        x1, w1 = _mixture_grid_1d(y, a, t, pb.tau, nodes=31)  # too coarse: atoms × Gauss–Hermite
        x2, w2 = _mixture_grid_1d(y, a, t, pb.tau, nodes=6001)
        assert len(x1) == 200 * 8 and len(x2) == 6001
        assert float(pb.risk(x1, w1)) == pytest.approx(float(pb.risk(x2, w2)), abs=1e-8)


def test_deviation_stats():
    from bolt.dynamics.tracking import deviation_stats

    risk = np.array([[1.0, 0.8, 0.5], [1.0, 0.7, 0.6]])
    ref = np.array([1.0, 0.75, 0.55])
    mean, se, per = deviation_stats(risk, ref, np.array([0.0, 0.01, 0.0]))
    np.testing.assert_allclose(per, [0.05, 0.05])
    assert mean == pytest.approx(0.05)
    assert se == pytest.approx(0.01)  # no spread over repetitions; the reference's SE where the mean gap peaks
    mean, _, per = deviation_stats(risk, ref, np.zeros(3), mask=np.array([True, False, True]))
    np.testing.assert_allclose(per, [0.05, 0.05])
    # with a spread over R = 3 repetitions (sd 0.05 of the maxima 0.05, 0.15, 0.10): sd/√R beside the reference's SE
    risk = np.array([[1.0, 0.80, 0.55], [1.0, 0.90, 0.55], [1.0, 0.85, 0.55]])
    mean, se, per = deviation_stats(risk, ref, np.array([0.0, 0.02, 0.0]))
    np.testing.assert_allclose(per, [0.05, 0.15, 0.10])
    assert mean == pytest.approx(0.10)
    assert se == pytest.approx(np.hypot(0.05 / np.sqrt(3), 0.02))


def test_greedy_cost_uses_cross_group_pairs_only():
    """The endpoint risk of greedy_cost is R0 + 2 mean f̃ + the mean of K over pairs from different groups
    (brute force over the 12 × 12 kernel matrix without its 4 × 4 diagonal blocks)."""
    from bolt.dynamics.sde import SDEResult
    from bolt.dynamics.sgd import GreedyResult, greedy_cost

    pb = bolt.make_problem("erf", bolt.Teacher([[1.0, 0.5]], [1.0]), beta=0.7, tau=0.3)
    W = np.random.default_rng(1).normal(size=(12, 2))
    sde = SDEResult(np.array([1.0]), W[:, None, :], np.linspace(0.1, 0.2, 12), np.array([0.0, 1.0]),
                    np.ones(1), np.ones(1), np.ones(1))
    c = greedy_cost(pb, GreedyResult(np.array([1.0]), np.zeros((3, 1)), sde))
    Kmat = np.asarray(pb.kernel(jnp.asarray(W), jnp.asarray(W)))
    mask = np.kron(np.eye(3), np.ones((4, 4))) == 0
    expect = float(pb.R0()) + 2 * float(np.mean(pb.ftilde(jnp.asarray(W)))) + Kmat[mask].mean()
    assert c["endpoint_risk"] == pytest.approx(expect, rel=1e-12)
    assert c["J"] == pytest.approx(np.mean(sde.energy) + 0.5 * pb.beta * expect, rel=1e-12)
    with pytest.raises(BoltError, match="2 groups"):
        greedy_cost(pb, GreedyResult(np.array([1.0]), np.zeros((1, 1)), sde))


def test_sgd_on_a_data_set_resamples_rows_and_records_empirical_risk():
    """Data problems: inputs are drawn from the data set's rows and R_N is its empirical risk (exact)."""
    from bolt.dynamics.sgd import input_sampler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    Y = np.tanh(X @ np.array([1.0, -0.5]))
    pb = bolt.make_problem("erf", inputs=bolt.DataInputs(X, Y), beta=0.5, tau=0.2)
    Xs, Ys = input_sampler(pb)(jax.random.PRNGKey(0), 200)
    rows = {tuple(np.round(r, 12)) for r in X}
    assert all(tuple(np.round(r, 12)) in rows for r in np.asarray(Xs))
    np.testing.assert_allclose(np.asarray(Ys), Y[[int(np.argmin(np.sum((X - x) ** 2, 1))) for x in np.asarray(Xs)]])
    res = run_sgd(jax.random.PRNGKey(1), pb, 6, 30, repetitions=2, records=3, progress_bar=False)
    for r in range(2):
        W = res.final[r]
        emp = np.mean((Y - np.mean(np.asarray(jax.scipy.special.erf(X @ W.T)), 1)) ** 2)
        assert res.risk[r, -1] == pytest.approx(emp, rel=1e-10)


def test_reference_flow_d2_bridge_paths_within_mc_error():
    """d = 2: the bridge-path U-statistic of R(µ*_t) for µ* = N(m, s²I) (as 2000 draws) is within 5 SE of the
    Gaussian marginal's risk by a 30 × 30 Gauss–Hermite rule; its SE is positive."""
    from bolt.dynamics.sgd import reference_flow

    pb = bolt.make_problem("erf", bolt.Teacher([[1.0, 0.5]], [1.0]), beta=1.0, tau=0.4)
    m, s2 = np.array([0.5, -0.2]), 0.2
    P = m + np.sqrt(s2) * np.random.default_rng(0).normal(size=(2000, 2))
    ts = np.array([0.3, 0.8])
    r, se, how = reference_flow(jax.random.PRNGKey(0), pb, P, None, ts, n=2000)
    assert "bridge paths" in how and np.all(se > 0)
    z, wz = np.polynomial.hermite_e.hermegauss(30)
    Z = np.stack(np.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
    WZ = np.outer(wz, wz).reshape(-1) / wz.sum() ** 2
    for t, rt, st in zip(ts, r, se):
        var = t * t * s2 + pb.tau * t * (1 - t)
        exact = float(pb.risk(jnp.asarray(t * m + np.sqrt(var) * Z), jnp.asarray(WZ)))
        # two independent 2000-draw errors of the same size: the bridge paths' (st) and the particle set's own
        assert abs(rt - exact) < K * np.sqrt(2) * st, (t, rt, exact, st)


def test_dynamics_checks_report_beta_times_the_free_energy():
    """The greedy verdict compares J with βF(µ*): βF and its SE are β times the summary's F and F_se."""
    from bolt.config import check_dynamics, resolve_config
    from bolt.dynamics.tracking import dynamics_checks

    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=0.3, tau=0.09)
    s = check_dynamics({**resolve_config({})["dynamics"], "kind": "sgd", "particles": 4, "steps": 10,
                        "repetitions": 2})
    P, w = np.linspace(-1, 1, 21)[:, None], np.full(21, 1 / 21)
    out, _ = dynamics_checks(jax.random.PRNGKey(0), pb, P, w, {"free_energy": 0.2, "free_energy_se": 0.01}, s,
                             reference_samples=100, progress_bar=False)
    assert out["beta_F"] == pytest.approx(0.3 * 0.2, rel=1e-14)
    assert out["beta_F_se"] == pytest.approx(0.3 * 0.01, rel=1e-14)


def test_init_draws_the_prior():
    """W_0 iid γ_τ = N(0, τI): per-coordinate variance τ (not τ²), mean 0, within 5 SE of 20 000 × 2 draws."""
    tau = 0.3
    W = np.asarray(init(jax.random.PRNGKey(0), 20_000, 2, tau).particles)
    assert_close_z(W.var(0, ddof=1), tau, tau * np.sqrt(2 / (len(W) - 1)), 5.0, "variance")
    assert_close_z(W.mean(0), 0.0, np.sqrt(tau / len(W)), 5.0, "mean")


def test_input_sampler_draws_every_data_row_uniformly():
    """Data problems: ``input_sampler`` draws rows uniformly with replacement from all n rows (π is the
    empirical law): with n = 3 rows and 30 000 draws each row's frequency is 1/3 within 5 binomial SE
    (sqrt((1/3)(2/3)/30 000) ≈ 0.0027); a sampler that never reaches the last row gives it frequency 0."""
    from bolt.dynamics.sgd import input_sampler

    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, -1.0]])
    Y = np.array([0.5, -0.5, 1.5])
    pb = bolt.make_problem("erf", inputs=bolt.DataInputs(X, Y), beta=0.5, tau=0.2)
    B = 30_000
    Xs, Ys = input_sampler(pb)(jax.random.PRNGKey(3), B)
    rows = np.asarray(Xs)[:, 0].round().astype(int)  # the first coordinate names the row
    np.testing.assert_allclose(np.asarray(Ys), Y[rows])
    freq = np.bincount(rows, minlength=3) / B
    se = np.sqrt((1 / 3) * (2 / 3) / B)
    assert_close_z(freq, np.full(3, 1 / 3), np.full(3, se), K, "row frequencies")


def test_sgd_loss_is_an_unbiased_estimate_of_the_network_risk():
    """``SGDResult.loss`` is the minibatch mean of (Y − f̂_N(X))² before the step: with a negligible step
    (η = 1e-30, W stays W_0) its mean over 3000 fresh inputs estimates R_N(W_0) = E_π(f − f̂_N)², exact on
    the arcsine route, within 5 SE (SE = sd of the per-step losses / √3000); ½(Y − f̂_N)² is far off."""
    pb = bolt.make_problem("erf", bolt.Teacher([[1.0, 0.5]], [1.0]), beta=1.0, tau=0.5)
    n = 3000
    res = run_sgd(jax.random.PRNGKey(0), pb, 5, n, eta=1e-30, minibatch=1, records=1, progress_bar=False)
    exact = float(network_risk(pb, jnp.asarray(res.initial[0])))
    loss = res.loss[0]
    assert loss.shape == (n,)
    m, se = loss.mean(), loss.std(ddof=1) / np.sqrt(n)
    assert_close_z(m, exact, se, K, "mean loss vs R_N(W_0)")
    assert abs(0.5 * m - exact) > 2 * K * se  # power: the half-squared loss is not R_N


def test_dynamics_checks_frozen_baseline_and_end_se_follow_from_the_recorded_risks():
    """``frozen_deviation`` is the deviation of the network that never moves, R_N(W_0) held at every record:
    mean over repetitions of max_k |R_N(W_0) − R(µ*_{kη})|; ``sgd_risk_end_se`` is the SE of the mean final
    risk, sd/√R over the R repetitions. Both from the raw arrays of the returned Dataset (to round-off)."""
    from bolt.config import check_dynamics, resolve_config
    from bolt.dynamics.tracking import dynamics_checks

    pb = bolt.make_problem("erf", bolt.Teacher([[1.5]], [1.0]), beta=0.3, tau=0.09)
    reps = 4
    s = check_dynamics({**resolve_config({})["dynamics"], "kind": "sgd", "particles": 4, "steps": 10,
                        "repetitions": reps})
    P, w = np.linspace(-1, 1, 21)[:, None], np.full(21, 1 / 21)
    out, ds = dynamics_checks(jax.random.PRNGKey(0), pb, P, w, {"free_energy": 0.2, "free_energy_se": 0.01}, s,
                              reference_samples=100, progress_bar=False)
    risk, ref = np.asarray(ds["sgd_risk"]), np.asarray(ds["reference_risk"])
    assert not np.allclose(risk[:, 0], risk[:, -1])  # the networks move, so start and end differ
    frozen = np.mean(np.max(np.abs(risk[:, :1] - ref[None, :]), axis=1))
    assert out["frozen_deviation"] == pytest.approx(frozen, rel=1e-12)
    assert out["sgd_risk_end_se"] == pytest.approx(risk[:, -1].std(ddof=1) / np.sqrt(reps), rel=1e-12)


@pytest.mark.statistical
def test_greedy_cost_endpoint_risk_se_is_calibrated():
    """For iid endpoints W_i ~ N(m, s²I) the cross-group U-statistic risk has influence function 2Ψ(w; ν), so its
    SE is 2 sd(Ψ)/√n. Over 100 replications of n = 400 draws (4 groups of 100) the spread of the endpoint risk
    matches the mean reported SE: ratio within ±35 % (the relative sd of a 100-replicate sd is 1/√198 ≈ 7 %;
    5 of those), so an SE without the factor 2 (ratio 2) fails."""
    from bolt.dynamics.sde import SDEResult
    from bolt.dynamics.sgd import GreedyResult

    pb = bolt.make_problem("erf", bolt.Teacher([[1.0, 0.5]], [1.0]), beta=0.7, tau=0.3)
    m, s, n, reps, R = np.array([0.4, -0.2]), 0.7, 400, 4, 100
    vals, ses = [], []
    for r in range(R):
        W = m + s * np.asarray(jax.random.normal(jax.random.PRNGKey(r), (n, 2)), np.float64)
        sde = SDEResult(np.array([1.0]), W[:, None, :], np.zeros(n), np.array([0.0, 1.0]),
                        np.ones(1), np.ones(1), np.ones(1))
        c = greedy_cost(pb, GreedyResult(np.array([1.0]), np.zeros((reps, 1)), sde))
        vals.append(c["endpoint_risk"])
        ses.append(c["endpoint_risk_se"])
    ratio = np.std(vals, ddof=1) / np.mean(ses)
    assert 0.65 < ratio < 1.35, ratio
