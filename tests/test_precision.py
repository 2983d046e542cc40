"""``solver.precision = "float32"``: MFLD's steps in float32, everything downstream in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bolt
from bolt.config import resolve_config
from bolt.errors import ConfigError
from bolt.gibbs.mfld import build_step
from bolt.solve import solve


@pytest.fixture(scope="module")
def pb():
    return bolt.make_problem("erf", bolt.Teacher([[1.5, 0.0], [0.0, 1.5]]), beta=1.0, tau=0.5)


def test_float32_step_stays_float32_and_matches_float64(pb):
    W = jnp.sqrt(pb.tau) * jax.random.normal(jax.random.PRNGKey(0), (300, 2))
    g64 = pb.grad_psi(W, W)
    g32 = pb.grad_psi(W.astype(jnp.float32), W.astype(jnp.float32))
    assert g32.dtype == jnp.float32
    rel = float(jnp.max(jnp.linalg.norm(g32 - g64, axis=1) / jnp.linalg.norm(g64, axis=1)))
    assert rel < 1e-5, rel  # float32 round-off (~1e-7), far below the particles' Monte Carlo error
    out = jax.jit(build_step(pb))(jax.random.PRNGKey(1), W.astype(jnp.float32), pb.beta, pb.tau, 0.02)
    assert out.dtype == jnp.float32  # no silent promotion back to float64 in the hot loop


def _dot_precisions(jaxpr, out):
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            out.append(eqn.params["precision"])
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    _dot_precisions(inner, out)
    return out


@pytest.mark.parametrize("inputs", ["gaussian", "sample"])
def test_float32_step_asks_for_full_precision_products(inputs):
    # On GPUs JAX's default float32 product is TF32 (relative error 3e-3 in this step on an H200, where
    # the test above failed); CPUs compute float32 products exactly whatever is asked, so the request
    # itself is what can be checked here: every product in the step, at HIGHEST precision.
    kw = {"inputs": bolt.SampleInputs(64)} if inputs == "sample" else {}
    pb = bolt.make_problem("erf", bolt.Teacher([[1.5, 0.0], [0.0, 1.5]]), beta=1.0, tau=0.5, **kw)
    assert pb.route == ("expectation" if inputs == "sample" else "arcsine")
    W = jnp.ones((30, 2), jnp.float32)
    jaxpr = jax.make_jaxpr(build_step(pb))(jax.random.PRNGKey(0), W, 1.0, 0.5, 0.02).jaxpr
    precisions = _dot_precisions(jaxpr, [])
    assert len(precisions) >= 2
    highest = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)
    assert all(p == highest for p in precisions), precisions


def test_float32_solve_returns_float64_results(pb):
    res = solve(pb, "mfld", particles=128, horizon=0.4, blocks=2, refresh_steps=10, precision="float32",
                progress_bar=False)
    assert res.settings["precision"] == "float32"
    assert res.particles.dtype == np.float64 and res.field.particles.dtype == jnp.float64
    assert np.all(np.isfinite(res.trace["risk"]))


def test_config_precision_validation():
    assert resolve_config({})["solver"]["precision"] == "float64"
    assert resolve_config({"solver": {"method": "mfld", "precision": "float32"}})["solver"]["precision"] == "float32"
    with pytest.raises(ConfigError, match="solver.precision"):
        resolve_config({"solver": {"method": "mfld", "precision": "float16"}})
    with pytest.raises(ConfigError, match="implemented for method = .mfld. only"):
        resolve_config({"solver": {"precision": "float32"}})
