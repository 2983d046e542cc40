"""`bolt run`: the main job writes config.toml, summary.json and results.nc."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bolt.config import load_config

SUMMARY_KEYS = ("risk", "kl", "log_z", "free_energy", "mean", "covariance", "w2_squared_to_prior", "residual",
                "converged", "solver", "seed", "versions")


def _bolt(*args):
    return subprocess.run([sys.executable, "-m", "bolt.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    cfg = d / "c.toml"
    cfg.write_text("""
[problem]
dim = 2
[problem.target]
kind = "teacher"
weights = [[1.5, 0.0], [0.0, 1.0]]
coefficients = [1.0, -0.5]
[solver]
method = "mfld"
particles = 400
horizon = 4.0
tolerance = 0.3
[output]
report = false
""")
    r = _bolt("run", str(cfg), "--out", str(d / "out"))
    return d / "out", r


def test_run_writes_outputs(small_run):
    out, r = small_run
    assert r.returncode == 0, r.stderr
    assert "free energy" in r.stdout and "Traceback" not in r.stderr
    # the bounds table, read back from bounds.json (whose undefined margins are JSON nulls)
    assert "bounds (MATH.md" in r.stdout and "corollary_a" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert set(summary["versions"]) >= {"bolt", "jax", "numpyro"}
    assert np.asarray(summary["covariance"]).shape == (2, 2)
    cfg = load_config(out / "config.toml")
    assert cfg["solver"]["method"] == "mfld" and cfg["solver"]["particles"] == 400
    import arviz as az

    idata = az.from_netcdf(out / "results.nc")
    assert {"posterior", "particles", "fixed_point"} <= set(idata.groups())
    assert idata.posterior["w"].dims == ("chain", "draw", "w_dim")
    assert not list(out.glob(".*tmp")) and not (out / "checkpoint.npz").exists()


def test_run_reports_non_convergence(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
[problem]
dim = 1
[problem.target]
kind = "teacher"
weights = [[1.5]]
[solver]
method = "mfld"
particles = 200
horizon = 0.2
tolerance = 1e-6
[output]
report = false
bounds = false
""")
    r = _bolt("run", str(cfg), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "converged         NO" in r.stdout
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["converged"] is False


def test_run_bad_config_is_one_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[solver]\nmethod = "gibbs"\n')
    r = _bolt("run", str(cfg), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "solver.method" in r.stderr and "Traceback" not in r.stderr
    r = _bolt("run", "--resume", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "resume" in r.stderr and "Traceback" not in r.stderr


def test_background_imports_load_the_module_and_swallow_failures():
    """``bolt run`` overlaps the summary's imports with the solve: the thread imports the module, and an
    import that fails there is left to fail (with its message) where the module is used."""
    from bolt.commands import _import_in_background

    sys.modules.pop("colorsys", None)
    t = _import_in_background("bolt_no_such_module", "colorsys")
    t.join(30)
    assert not t.is_alive() and "colorsys" in sys.modules
