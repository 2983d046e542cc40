"""Bad input gets a clear error naming the field; the CLI exits non-zero with one line, no traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bolt import BoltError, ConfigError
from bolt.config import load_config, problem_from_config, resolve_config
from bolt.problem import DataInputs, Linear, Teacher, load_data, make_problem


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(activation="relu6", target=Teacher(np.eye(2))), "problem.activation"),
        (dict(target=Teacher(np.eye(2)), tau=0.0), "regularization.tau"),
        (dict(target=Teacher(np.eye(2)), beta=-1.0), "regularization.beta"),
        (dict(target=Teacher(np.eye(2)), dim=3), "problem.target.weights"),
        (dict(target=Linear([1.0, 2.0]), dim=3), "problem.target.a"),
        (dict(target=lambda: Teacher([1.0, 2.0])), "problem.target.weights"),
        (dict(target=lambda: Teacher(np.eye(2), [1.0, 2.0, 3.0])), "problem.target.coefficients"),
        (dict(target=lambda: Teacher([[np.nan, 1.0]])), "problem.target.weights"),
    ],
)
def test_make_problem_errors_name_the_field(kwargs, field):
    with pytest.raises(BoltError, match=field.replace(".", r"\.")):
        kwargs = {k: v() if callable(v) else v for k, v in kwargs.items()}
        make_problem(**kwargs)


def test_data_errors(tmp_path):
    with pytest.raises(BoltError, match="NaN or inf"):
        DataInputs(np.array([[1.0, np.nan]]), np.array([1.0]))
    with pytest.raises(BoltError, match="Y has 2 rows"):
        DataInputs(np.ones((3, 2)), np.ones(2))
    f = tmp_path / "d.npz"
    np.savez(f, X=np.ones((3, 2)))
    with pytest.raises(BoltError, match="no array Y"):
        load_data(f)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BoltError, match="cannot read"):
        load_data(bad)
    with pytest.raises(BoltError, match="file not found"):
        load_data(tmp_path / "missing.npz")
    d = DataInputs(np.ones((4, 2)), np.ones(4))
    with pytest.raises(BoltError, match="problem.data"):
        make_problem("erf", dim=3, inputs=d)


def test_csv_data_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 2)), rng.normal(size=20)
    f = tmp_path / "d.csv"
    f.write_text("x1,x2,y\n" + "\n".join(",".join(str(float(v)) for v in [*x, y]) for x, y in zip(X, Y)))
    d = load_data(f)
    np.testing.assert_allclose(d.X, X)
    pb = make_problem("erf", inputs=d, beta=1.0, tau=1.0)
    assert pb.route == "expectation" and pb.d == 2
    np.testing.assert_allclose(pb.R0(), np.mean(Y**2))


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"problem": {"dimm": 3}}, "problem.dimm"),
        ({"solver": {"method": "hmc"}}, "solver.method"),
        ({"regularization": {"tau": -1.0}}, "regularization.tau"),
        ({"problem": {"target": {"kind": "quadratic"}}}, "problem.target.kind"),
        ({"problem": {"target": {"kind": "linear", "a": [1, 2, 3], "weights": []}}}, "problem.target.weights"),
        ({"bogus": {}}, "bogus"),
        ({"problem": {"dim": "three"}}, "problem.dim"),
    ],
)
def test_config_errors_name_the_field(raw, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        resolve_config(raw)


def test_config_roundtrip_and_problem(tmp_path):
    from bolt.config import dump_toml

    cfg = load_config(None)
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(cfg))
    assert load_config(path) == cfg
    pb = problem_from_config(cfg)
    assert pb.d == 3 and pb.route == "arcsine"


def _bolt(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bolt.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_cli_problem_json_and_errors(tmp_path):
    r = _bolt("problem", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    for key in ("R0", "risk_at_prior", "L_sigma_squared", "kappa", "route"):
        assert key in info
    assert info["route"] == "arcsine"
    np.testing.assert_allclose(info["L_sigma_squared"], 12 / np.pi)

    bad = tmp_path / "bad.toml"
    bad.write_text('[problem]\ndim = 3\ncolour = "red"\n')
    r = _bolt("problem", str(bad))
    assert r.returncode != 0
    assert "problem.colour" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    r = _bolt("problem", str(tmp_path / "nope.toml"))
    assert r.returncode != 0 and "not found" in r.stderr and "Traceback" not in r.stderr

    bad.write_text("[regularization]\ntau = 0.0\n")
    r = _bolt("problem", str(bad))
    assert r.returncode != 0 and "regularization.tau" in r.stderr

    bad.write_text('[problem]\ndim = 2\n[problem.target]\nkind = "teacher"\nweights = [[1.0, 0.0, 0.0]]\n')
    r = _bolt("problem", str(bad))
    assert r.returncode != 0 and "problem.target.weights" in r.stderr and "Traceback" not in r.stderr


def test_cli_version_and_help():
    r = _bolt("--version")
    assert r.returncode == 0 and "bolt" in r.stdout
    r = _bolt("--help")
    assert r.returncode == 0 and "problem" in r.stdout
