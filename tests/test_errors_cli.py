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


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"solver": {"damping": 1.5}}, "solver.damping"),
        ({"solver": {"damping": 0.0}}, "solver.damping"),
        ({"regularization": {"beta": 0.0}}, "regularization.beta"),
        ({"regularization": {"tau": 0.0}}, "regularization.tau"),
        ({"solver": {"buffer": 1}}, "solver.buffer"),
        ({"solver": {"tolerance": 1.0}}, "solver.tolerance"),
        ({"output": {"target_rel_se": 1.0}}, "output.target_rel_se"),
        ({"solver": {"horizon": float("nan")}}, "solver.horizon"),
        ({"regularization": {"beta": float("nan")}}, "regularization.beta"),
        ({"solver": {"final_blocks": 0}}, "solver.final_blocks"),
        ({"solver": {"particles": 2001, "chains": 40}}, "solver.particles"),
        ({"dynamics": {"steps": 0}}, "dynamics.steps"),
        ({"dynamics": {"particles": 0}}, "dynamics.particles"),
    ],
)
def test_config_boundaries_are_rejected_naming_the_field(raw, field):
    """docs/config.md's ranges at their edges: damping in (0, 1], β, τ > 0, buffer ≥ 2, the fixed-point
    test's level in (0, 1), target_rel_se in [0, 1), every number finite, final_blocks ≥ 1, Picard's
    particles a multiple of chains, dynamics sizes ≥ 1. The admissible edge next to each is accepted."""
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        resolve_config(raw)


@pytest.mark.parametrize(
    "raw",
    [{"solver": {"damping": 1.0}}, {"solver": {"buffer": 2}}, {"solver": {"tolerance": 0.999}},
     {"output": {"target_rel_se": 0.999}}, {"solver": {"final_blocks": 1}},
     {"solver": {"particles": 2000, "chains": 40}}, {"dynamics": {"steps": 1, "particles": 1}}],
)
def test_config_admissible_edges_are_accepted(raw):
    resolve_config(raw)


def test_relative_data_path_is_relative_to_the_config_file(tmp_path, monkeypatch):
    """docs/config.md: a relative ``problem.data`` is relative to the config file, not the working directory."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.csv").write_text("x,y\n1.0,2.0\n3.0,4.0\n")
    cfgfile = tmp_path / "sub" / "c.toml"
    cfgfile.write_text('[problem]\ninputs = "data"\ndata = "d.csv"\n[problem.target]\nkind = "data"\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_config(cfgfile)
    assert cfg["problem"]["data"] == str((tmp_path / "sub" / "d.csv").resolve())


def test_data_and_target_size_edges_name_the_field(tmp_path):
    """A CSV needs an input column besides its label; a realizable target needs >= 2 (antithetic) nodes."""
    from bolt.problem import Realizable

    f = tmp_path / "labels.csv"
    f.write_text("y\n1.0\n2.0\n")
    with pytest.raises(BoltError, match="needs at least one row of inputs and a label column"):
        load_data(f)
    with pytest.raises(BoltError, match=r"problem\.target\.nodes"):
        Realizable([1.0, 0.0], nodes=1)
    assert Realizable([1.0, 0.0], nodes=2).nodes == 2
