"""``solver.devices``: particles and chains split over devices give the one-device answer.

The sharded runs need several devices, which a CPU process only has when XLA is told so before
JAX starts (``--xla_force_host_platform_device_count``); they run in a subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import pytest

from bolt.config import resolve_config
from bolt.errors import BoltError, ConfigError
from bolt.gibbs.sharding import row_sharding

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import bolt
    from bolt.cache import enable_compilation_cache
    from bolt.gibbs.mfld import build_step
    from bolt.gibbs.sharding import row_sharding, shard_rows
    from bolt.solve import solve

    enable_compilation_cache()  # the test session's own cache (tests/conftest.py)
    out = {"devices": len(jax.devices())}
    teacher = bolt.Teacher([[1.5, 0.0], [0.0, 1.5]])
    for act in ("erf", "tanh"):  # arcsine route (all-gather of particles), expectation route (all-reduce of f̂)
        pb = bolt.make_problem(act, teacher, beta=1.0, tau=0.5, inputs=bolt.GaussianInputs(samples=512))
        sh = row_sharding(2, 64)
        W = shard_rows(jnp.sqrt(pb.tau) * jax.random.normal(jax.random.PRNGKey(1), (64, 2)), sh)
        W1 = jax.jit(build_step(pb, sh))(jax.random.PRNGKey(2), W, pb.beta, pb.tau, 0.02)
        W0 = jax.jit(build_step(pb))(jax.random.PRNGKey(2), np.asarray(W), pb.beta, pb.tau, 0.02)
        runs = [solve(pb, "mfld", particles=64, horizon=0.4, blocks=2, refresh_steps=10, devices=dv,
                      progress_bar=False) for dv in (1, 2)]
        out[act] = {
            "route": pb.route,
            "step_devices": len(W1.sharding.device_set),
            "step_sharded": not W1.sharding.is_fully_replicated,
            "step_diff": float(jnp.max(jnp.abs(W1 - W0))),
            "solve_diff": float(np.max(np.abs(runs[0].particles - runs[1].particles))),
            "risk_diff": float(np.max(np.abs(runs[0].trace["risk"] - runs[1].trace["risk"]))),
            "settings_devices": runs[1].settings["devices"],
        }
    pb = bolt.make_problem("erf", teacher, beta=1.0, tau=0.5)
    runs = [solve(pb, "picard-mala", particles=64, chains=4, warmup=20, inner_steps=2, max_iterations=2,
                  min_iterations=2, final_blocks=2, logz_samples=256, devices=dv, progress_bar=False)
            for dv in (1, 2)]
    out["picard"] = {"solve_diff": float(np.max(np.abs(runs[0].particles - runs[1].particles))),
                     "kl_diff": float(np.max(np.abs(runs[0].trace["kl"] - runs[1].trace["kl"]))),
                     "settings_devices": runs[1].settings["devices"]}
    print("RESULT " + json.dumps(out))
""")


def test_two_host_devices_equal_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["devices"] == 2
    assert out["erf"]["route"] == "arcsine" and out["tanh"]["route"] == "expectation"
    for act in ("erf", "tanh"):
        r = out[act]
        assert r["step_devices"] == 2 and r["step_sharded"], r  # the particles really are split
        assert r["settings_devices"] == 2
        for key in ("step_diff", "solve_diff", "risk_diff"):
            assert r[key] < 1e-10, (act, key, r[key])
    assert out["picard"]["settings_devices"] == 2
    assert out["picard"]["solve_diff"] < 1e-10 and out["picard"]["kl_diff"] < 1e-10, out["picard"]


def test_one_device_is_no_sharding_and_bad_counts_fail():
    assert row_sharding(1, 7) is None
    n = len(jax.devices())
    if n == 1:
        assert row_sharding(0, 7) is None  # "all devices" on a one-device machine
    with pytest.raises(BoltError, match="solver.devices"):
        row_sharding(n + 1, 8 * (n + 1))
    with pytest.raises(BoltError, match="solver.devices"):
        row_sharding(-1, 8)


def test_config_devices_validation():
    assert resolve_config({})["solver"]["devices"] == 1
    assert resolve_config({"solver": {"devices": 0}})["solver"]["devices"] == 0
    with pytest.raises(ConfigError, match="solver.devices"):
        resolve_config({"solver": {"devices": -1}})
    with pytest.raises(ConfigError, match="solver.chains: 40 is not a multiple of solver.devices = 3"):
        resolve_config({"solver": {"devices": 3}})
    with pytest.raises(ConfigError, match="solver.particles: 2000 is not a multiple"):
        resolve_config({"solver": {"method": "mfld", "devices": 3}})
