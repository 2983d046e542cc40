"""Issue 12: config hashes, impossible sizes, ranges, odd files, finite outputs, escaped HTML.

Everything here runs in-process on a 1-D grid run (seconds); the CLI contract (exit 2, one line,
no traceback) is checked through :func:`bolt.cli.main`.
"""

import errno
import json
import os
import shutil
import time

import numpy as np
import pytest

from bolt.cli import main
from bolt.commands import run_config
from bolt.config import load_config, resolve_config
from bolt.errors import BoltError, ConfigError, ResultsError

GRID = """
[problem]
dim = 1
[problem.target]
kind = "teacher"
weights = [[1.5]]
coefficients = [1.0]
[solver]
method = "grid"
grid_points = 101
[output]
report = {report}
bounds = true
"""


def _cli(capsys, *args):
    rc = main(list(args))
    err = capsys.readouterr().err
    return rc, err


def _one_line(err):
    return "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("robust")
    (d / "c.toml").write_text(GRID.format(report="true"))
    run_config(load_config(d / "c.toml"), d / "run", quiet=True)
    return d


@pytest.fixture
def run(grid_run, tmp_path):
    """A private copy of the finished grid run."""
    shutil.copytree(grid_run / "run", tmp_path / "run")
    return tmp_path / "run"


# ----------------------------------------------------------------------------- config hash

def test_run_directory_carries_the_config_hash(run):
    from bolt.rundir import config_digest

    summary = json.loads((run / "summary.json").read_text())
    text = (run / "config.toml").read_text()
    import tomllib

    assert summary["config_sha256"] == config_digest(tomllib.loads(text)) and summary["config_sha256"] in text
    assert summary["config"]["regularization"]["beta"] == 1.0


@pytest.mark.parametrize("header", [True, False])
def test_edited_config_is_refused_by_bounds_report_and_resume(run, capsys, header):
    text = (run / "config.toml").read_text()
    edited = text.replace("beta = 1.0", "beta = 3.0").replace("particles = 2000", "particles = 400")
    if not header:  # the header removed too: summary.json still holds the hash
        edited = "\n".join(x for x in edited.splitlines() if not x.startswith("#"))
    (run / "config.toml").write_text(edited)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for args in (("bounds", str(run)), ("report", str(run)), ("bridge", str(run)), ("run", "--resume", str(run))):
        rc, err = _cli(capsys, *args)
        assert rc == 2 and _one_line(err), (args, err)
        assert "edited" in err and "regularization.beta 1.0 -> 3.0" in err and "solver.particles 2000 -> 400" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    (run / "config.toml").write_text(text)
    assert _cli(capsys, "bounds", str(run))[0] == 0


def test_changed_data_file_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 1))
    f = tmp_path / "d.csv"
    f.write_text("x,y\n" + "\n".join(f"{x:.6f},{np.tanh(1.5 * x):.6f}" for x in X[:, 0]))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[problem]\ninputs = "data"\ndata = "d.csv"\ndim = 1\n[problem.target]\nkind = "data"\n'
                   '[solver]\nmethod = "grid"\ngrid_points = 101\n[output]\nreport = false\nbounds = false\n')
    assert _cli(capsys, "run", str(cfg), "--out", str(tmp_path / "run"), "--quiet")[0] == 0
    assert "data_sha256" in json.loads((tmp_path / "run" / "summary.json").read_text())
    f.write_text(f.read_text().replace("x,y", "x,label"))  # same numbers, different bytes: still a change
    rc, err = _cli(capsys, "bounds", str(tmp_path / "run"))
    assert rc == 2 and _one_line(err) and "data file" in err and "changed" in err


def test_resume_before_the_first_checkpoint_starts_from_the_saved_config(tmp_path, capsys):
    from bolt.rundir import config_text

    run = tmp_path / "run"
    run.mkdir()
    cfg = resolve_config({"problem": {"dim": 1, "target": {"kind": "teacher", "weights": [[1.5]],
                                                           "coefficients": [1.0]}},
                          "solver": {"method": "grid", "grid_points": 101}, "output": {"report": False,
                                                                                         "bounds": False}})
    (run / "config.toml").write_text(config_text(cfg))  # what a run killed before its first checkpoint leaves
    (run / ".summary.json.x1y2z3.tmp").write_text("{half")  # and a killed write's litter
    rc, err = _cli(capsys, "run", "--resume", str(run), "--quiet")
    assert rc == 0, err
    assert (run / "summary.json").is_file() and not list(run.glob(".*.tmp"))


def test_stale_temporaries_are_cleaned_under_the_lock(run, capsys):
    (run / ".checkpoint.npz.abc123.tmp").write_bytes(b"half a checkpoint")
    (run / ".bounds.json.zzz.tmp").write_text("[")
    (run / "notes.tmp").write_text("mine")  # not a bolt temporary: kept
    assert _cli(capsys, "bounds", str(run))[0] == 0
    assert sorted(p.name for p in run.glob("*.tmp")) == ["notes.tmp"] and not list(run.glob(".*.tmp"))


# ----------------------------------------------------------------------------- ranges and integers

@pytest.mark.parametrize("raw, key", [
    ({"solver": {"seed": 2**70}}, "solver.seed"),
    ({"solver": {"warmup": 2**64}}, "solver.warmup"),
    ({"solver": {"particles": -(2**63) - 1}}, "solver.particles"),
    ({"problem": {"seed": 2**63}}, "problem.seed"),
    ({"problem": {"target": {"kind": "realizable", "mean": [1.0, 0, 0], "nodes": 2.9}}}, "problem.target.nodes"),
    ({"problem": {"target": {"kind": "realizable", "mean": [1.0, 0, 0], "nodes": "many"}}}, "problem.target.nodes"),
    ({"problem": {"target": {"kind": "realizable", "mean": [1.0, 0, 0], "nodes": 2**64}}}, "problem.target.nodes"),
])
def test_integers_are_checked_not_truncated(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_config(raw)


def _grid_cfg(**kw):
    raw = {"problem": {"dim": 1, "target": {"kind": "teacher", "weights": [[1.5]], "coefficients": [1.0]}},
           "solver": {"method": "grid", "grid_points": 101}, "output": {"report": False, "bounds": False}}
    for path, v in kw.items():
        sec, key = path.split("__")
        raw.setdefault(sec, {})[key] = v
    return resolve_config(raw)


@pytest.mark.parametrize("kw, words", [
    (dict(regularization__beta=1e-300), "regularization.beta"),
    (dict(regularization__beta=1e-30), "so small"),
    (dict(regularization__beta=1e308), "regularization.beta"),
    (dict(regularization__beta=1e30), "exceeds"),
    (dict(regularization__tau=1e308), "regularization.tau"),
    (dict(regularization__tau=1e-308), "regularization.tau"),
    (dict(solver__method="mfld", solver__particles=1), "solver.particles"),
    (dict(solver__method="picard-mala", solver__particles=8, solver__chains=4), "draws per chain"),
])
def test_out_of_range_values_fail_before_anything_is_written(tmp_path, kw, words):
    t0 = time.time()
    with pytest.raises(BoltError, match=words):
        run_config(_grid_cfg(**kw), tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists() and time.time() - t0 < 20


def test_coarse_grid_is_refined_to_the_same_answer(grid_run):
    """grid_points = 3 is raised to resolve µ* (points per prior and posterior sd): same KL as 101."""
    ref = json.loads((grid_run / "run" / "summary.json").read_text())
    from bolt.config import problem_from_config
    from bolt.solve import solve

    cfg = _grid_cfg(solver__grid_points=3)
    res = solve(problem_from_config(cfg), "grid", grid_points=3)
    assert res.converged and res.settings["grid_points"] > 3 and res.settings["points_per_posterior_sd"] >= 2
    import jax

    from bolt.estimators.summary import summarize

    s = summarize(jax.random.PRNGKey(0), problem_from_config(cfg), res)
    np.testing.assert_allclose(s["kl"], ref["kl"], rtol=1e-6)


def test_problem_json_is_strict_and_never_nan(tmp_path, capsys):
    bad = tmp_path / "c.toml"
    bad.write_text('[problem]\ndim = 1\n[problem.target]\nkind = "teacher"\nweights = [[1e308]]\n'
                   'coefficients = [1e308]\n')
    rc = main(["problem", str(bad), "--json"])
    out = capsys.readouterr()
    assert rc == 2 and "NaN" not in out.out and out.out == "" and "R0" in out.err and _one_line(out.err)


def test_non_finite_results_are_never_written(run, monkeypatch):
    from bolt.rundir import check_results_finite

    for bad in (float("nan"), float("inf"), -3.3e292):
        with pytest.raises(ResultsError, match="free_energy"):
            check_results_finite({"risk": 0.1, "free_energy": bad})
    with pytest.raises(ResultsError, match=r"mean\[1\]"):
        check_results_finite({"mean": [0.0, float("nan")]})
    # a run whose summary would hold NaN writes nothing and keeps its checkpoint-free directory unchanged
    import bolt.estimators.summary as es

    real = es.summarize

    def nan_summary(*a, **k):
        s = real(*a, **k)
        s["kl"] = float("nan")
        return s

    monkeypatch.setattr(es, "summarize", nan_summary)
    with pytest.raises(ResultsError, match="kl"):
        run_config(_grid_cfg(), run.parent / "nan", quiet=True)
    assert not (run.parent / "nan" / "summary.json").exists()


# ----------------------------------------------------------------------------- memory

@pytest.mark.parametrize("kw, key", [
    (dict(solver__method="picard-mala", solver__particles=10**12, solver__chains=4), "solver.particles"),
    (dict(problem__input_samples=10**10, problem__activation="tanh"), "problem.input_samples"),
    (dict(solver__method="mfld", solver__horizon=1e15, solver__particles=100), "solver.horizon"),
    (dict(solver__method="picard-mala", solver__logz_samples=10**12), "solver.logz_samples"),
    (dict(problem__dim=2, solver__grid_points=100001), "solver.grid_points"),
])
def test_impossible_sizes_fail_fast_with_the_estimate(tmp_path, kw, key):
    cfg = _grid_cfg(**kw)
    if cfg["problem"]["dim"] == 2:
        cfg["problem"]["target"]["weights"] = [[1.5, 0.0]]
    t0 = time.time()
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as e:
        run_config(cfg, tmp_path / "out", quiet=True)
    assert time.time() - t0 < 2.0
    assert "needs an estimated" in str(e.value) and "available" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_realizable_nodes_and_problem_dim_are_estimated(tmp_path, capsys):
    c = tmp_path / "c.toml"
    c.write_text('[problem]\ndim = 1000000\nactivation = "tanh"\n[problem.target]\nkind = "linear"\na = [0.0]\n')
    t0 = time.time()
    rc, err = _cli(capsys, "problem", str(c))
    assert rc == 2 and _one_line(err) and "problem.input_samples" in err and "needs an estimated" in err
    c.write_text('[problem]\ndim = 2\nactivation = "tanh"\n[problem.target]\nkind = "realizable"\n'
                 'mean = [1.0, 0.0]\nnodes = 100000000000\n')
    rc, err = _cli(capsys, "problem", str(c))
    assert rc == 2 and "problem.target.nodes" in err and time.time() - t0 < 2.0


def test_memory_limit_override(monkeypatch):
    from bolt.resources import check_memory

    monkeypatch.setenv("BOLT_MEMORY_LIMIT", "1000")
    with pytest.raises(ConfigError, match="BOLT_MEMORY_LIMIT"):
        check_memory(_grid_cfg())
    monkeypatch.delenv("BOLT_MEMORY_LIMIT")
    assert check_memory(_grid_cfg()) > 0


# ----------------------------------------------------------------------------- odd files

def test_odd_data_files(tmp_path):
    from bolt.problem import load_data

    f = tmp_path / "bin.csv"
    f.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BoltError, match="problem.data: .*not a text CSV"):
        load_data(f)
    f.write_bytes(b"1,2\n\x003,4\n")
    with pytest.raises(BoltError, match="problem.data"):
        load_data(f)
    z = tmp_path / "c.npz"
    np.savez(z, X=np.ones((4, 2)) * (1 + 1j), Y=np.ones(4))
    with pytest.raises(BoltError, match="X in .* is complex"):
        load_data(z)
    np.savez(z, X=np.array([["a", "b"]] * 4), Y=np.ones(4))
    with pytest.raises(BoltError, match="problem.data"):
        load_data(z)
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffx,y\n1.0,2.0\n3.0,4.0\n".encode())
    np.testing.assert_allclose(load_data(bom).Y, [2.0, 4.0])


def test_config_with_a_utf8_bom_is_accepted(tmp_path):
    c = tmp_path / "bom.toml"
    c.write_bytes(b"\xef\xbb\xbf" + b"[regularization]\nbeta = 2.0\n")
    assert load_config(c)["regularization"]["beta"] == 2.0


@pytest.mark.parametrize("tamper, key", [
    (lambda s: [s], "the top level"),
    (lambda s: {**s, "risk": "high"}, "risk"),
    (lambda s: {k: v for k, v in s.items() if k != "kl"}, "kl"),
    (lambda s: {**s, "iterations": "<script>alert(1)</script>"}, "iterations"),
    (lambda s: {**s, "mean": [None]}, "mean"),
    (lambda s: {**s, "covariance": [[1.0, 2.0]]}, "covariance"),
    (lambda s: {**s, "converged": "yes"}, "converged"),
])
def test_wrong_shaped_summary_gets_one_line_naming_file_and_key(run, capsys, tamper, key):
    (run / "manifest.json").unlink(missing_ok=True)  # as written by an older bolt: the contents are checked
    s = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps(tamper(s)))
    for cmd in ("report", "bounds"):
        rc, err = _cli(capsys, cmd, str(run))
        assert rc == 2 and _one_line(err) and "summary.json" in err and key in err, (cmd, err)


@pytest.mark.parametrize("tamper, key", [
    (lambda b: {"not": "a list"}, "the top level"),
    (lambda b: [{k: v for k, v in b[0].items() if k != "lhs"}] + b[1:], "[0].lhs"),
    (lambda b: [{**b[0], "rhs": "big"}] + b[1:], "[0].rhs"),
    (lambda b: [7], "[0]"),
])
def test_wrong_shaped_bounds_gets_one_line(run, capsys, tamper, key):
    (run / "manifest.json").unlink(missing_ok=True)  # as written by an older bolt: the contents are checked
    b = json.loads((run / "bounds.json").read_text())
    (run / "bounds.json").write_text(json.dumps(tamper(b)))
    rc, err = _cli(capsys, "report", str(run))
    assert rc == 2 and _one_line(err) and "bounds.json" in err and key in err, err


def test_report_escapes_every_value(run):
    from bolt.diagnostics.report import build_report

    (run / "manifest.json").unlink(missing_ok=True)  # as written by an older bolt: the contents are checked
    s = json.loads((run / "summary.json").read_text())
    s["w2_estimator"] = "<script>alert('w2')</script>"
    s["versions"]["bolt"] = "<script>alert('v')</script>"
    s["problem"]["activation"] = "<img src=x onerror=alert(1)>"
    (run / "summary.json").write_text(json.dumps(s))
    b = json.loads((run / "bounds.json").read_text())
    b[0]["note"] = "<script>alert('note')</script>"
    (run / "bounds.json").write_text(json.dumps(b))
    html = build_report(run)
    assert "<script>" not in html and "<img src=x" not in html and html.count("&lt;script&gt;") >= 3


def test_read_only_output_directory_fails_before_work(run, capsys, monkeypatch):
    real = os.open

    def denied(path, flags, *a, **k):
        if str(path).endswith(".bolt.lock"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", denied)
    t0 = time.time()
    for args in (("bounds", str(run)), ("report", str(run)), ("run", "--resume", str(run))):
        rc, err = _cli(capsys, *args)
        assert rc == 2 and _one_line(err), err
    assert time.time() - t0 < 5
    rc, err = _cli(capsys, "bounds", str(run))
    assert "cannot write" in err and "Permission denied" in err


def test_full_disk_leaves_prior_files_and_no_litter(run, capsys, monkeypatch):
    before = {p.name: p.read_bytes() for p in run.iterdir()}

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    rc, err = _cli(capsys, "bounds", str(run))
    assert rc == 1 and _one_line(err) and "No space left on device" in err
    rc, err = _cli(capsys, "report", str(run))
    assert rc == 1 and "No space left on device" in err
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # no .tmp, no lock, old files intact


def test_accelerator_out_of_memory_is_one_line(monkeypatch, capsys):
    import bolt.cli as cli

    class XlaRuntimeError(RuntimeError):
        pass

    def boom(args):
        raise XlaRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 858993459200 bytes.\n"
                              "C++ stack trace ...")

    monkeypatch.setattr(cli, "_cmd_problem", boom)
    rc, err = _cli(capsys, "problem")
    assert rc == 1 and _one_line(err) and "out of memory" in err and "RESOURCE_EXHAUSTED" in err


def test_resume_with_the_same_config_given_is_accepted(tmp_path, capsys):
    from bolt.rundir import config_text

    c = tmp_path / "c.toml"
    c.write_text(GRID.format(report="false"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text(config_text(load_config(c)))  # an interrupted run of c.toml
    rc, err = _cli(capsys, "run", str(c), "--resume", str(run), "--out", str(run), "--quiet")
    assert rc == 0, err
    assert (run / "summary.json").is_file()


def test_checkpoint_that_does_not_fit_the_config_is_refused(tmp_path, capsys):
    from bolt.config import dump_toml
    from bolt.io import save_checkpoint

    run = tmp_path / "run"
    run.mkdir()
    cfg = _grid_cfg(solver__method="mfld", solver__particles=50)
    (run / "config.toml").write_text(dump_toml(cfg))  # an older bolt: no hash anywhere
    save_checkpoint(run / "checkpoint.npz", {"iteration": 3, "particles": np.zeros((50, 2)),
                                             "trace_risk": np.zeros(4)})
    rc, err = _cli(capsys, "run", "--resume", str(run))
    assert rc == 2 and _one_line(err) and "does not fit" in err and "(50, 1)" in err


def test_config_header_hash_alone_refuses_an_edited_config(tmp_path):
    """A run directory holding only ``config.toml`` (killed before its first checkpoint or summary) is
    still guarded: the header's SHA-256 is compared with the file's content (docs: an edited config.toml
    is refused by --resume, bounds, report)."""
    from bolt.rundir import config_text, verify_run_config

    cfg = resolve_config({"regularization": {"beta": 1.5}})
    (tmp_path / "config.toml").write_text(config_text(cfg))
    assert verify_run_config(tmp_path, "bounds") == cfg
    (tmp_path / "config.toml").write_text(config_text(cfg).replace("beta = 1.5", "beta = 3.0"))
    with pytest.raises(ResultsError, match="edited after the run wrote it"):
        verify_run_config(tmp_path, "bounds")


def test_summary_shape_check_refuses_absurd_magnitudes(tmp_path):
    """check_summary: a result must be a finite number with |x| <= MAX_ABS_RESULT (an overflow artefact
    otherwise); the edge value itself is accepted."""
    from bolt.rundir import MAX_ABS_RESULT, check_summary

    ok = {"solver": "grid", "converged": True, "iterations": 3, "risk": 0.1, "kl": 0.2, "log_z": -0.1,
          "free_energy": 0.3, "residual": 0.0, "w2_squared_to_prior": 0.1, "mean": [0.0], "covariance": [[1.0]]}
    check_summary(dict(ok, kl=MAX_ABS_RESULT), tmp_path / "summary.json")
    with pytest.raises(ResultsError, match=r"summary\.json: kl must be a finite number"):
        check_summary(dict(ok, kl=1e300), tmp_path / "summary.json")
    with pytest.raises(ResultsError, match="mean must be"):
        check_summary(dict(ok, mean=[-1e300]), tmp_path / "summary.json")


def test_atomic_writes_get_the_umask_mode_like_a_plain_open(tmp_path):
    """An atomic write (temp file + rename) leaves the same permissions as ``open(path, "w")`` would:
    0o666 & ~umask, not mkstemp's private 0o600."""
    from bolt.io import atomic_write_text, write_json

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_json(tmp_path / "b.json", {"a": 1})
        with open(tmp_path / "c.txt", "w") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    want = os.stat(tmp_path / "c.txt").st_mode & 0o777
    assert want == 0o644
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == want
    assert os.stat(tmp_path / "b.json").st_mode & 0o777 == want


def test_a_directory_with_only_config_toml_is_an_in_progress_run(tmp_path):
    """run_state: a config or checkpoint without a summary is a run in progress (a run killed before its
    first checkpoint), so a plain ``bolt run --out`` there is refused without --overwrite."""
    from bolt.commands import run_state

    assert run_state(tmp_path) is None
    (tmp_path / "config.toml").write_text("# bolt\n")
    assert run_state(tmp_path) == "in progress"
    cfg = resolve_config({"problem": {"dim": 1, "target": {"kind": "teacher", "weights": [[1.5]],
                                                           "coefficients": [1.0]}},
                          "solver": {"method": "grid", "grid_points": 101},
                          "output": {"report": False, "bounds": False}})
    with pytest.raises(ResultsError, match="in-progress run"):
        run_config(cfg, tmp_path, quiet=True)
    assert (tmp_path / "config.toml").read_text() == "# bolt\n"


def test_range_checks_refuse_exactly_at_their_documented_boundaries():
    """docs/config.md, 'Valid ranges': β, τ in [1e-100, 1e100]; 1e6·ε·ln n / R(γ_τ) <= β/τ and
    θ = (β/τ)·√R(γ_τ) <= 1e-6/ε; MFLD needs >= 8 particles, Picard >= 4 draws per chain.
    Each limit is probed a factor 1.5 (or one particle) either side of it: exact, no randomness."""
    from bolt.config import problem_from_config
    from bolt.resources import check_ranges

    eps = np.finfo(np.float64).eps

    def refused(words=None, **kw):
        cfg = _grid_cfg(**kw)
        try:
            check_ranges(cfg, problem_from_config(cfg))
        except ConfigError as e:
            assert words is None or words in str(e), str(e)
            return True
        return False

    assert refused("at least 8", solver__method="mfld", solver__particles=7)
    assert not refused(solver__method="mfld", solver__particles=8)
    assert refused("draws per chain", solver__method="picard-mala", solver__particles=12, solver__chains=4)
    assert not refused(solver__method="picard-mala", solver__particles=16, solver__chains=4)
    assert refused("outside", regularization__tau=1.5e100, regularization__beta=1.5e100)
    assert refused("outside", regularization__tau=1e-100 / 1.5, regularization__beta=1e-100 / 1.5)
    # a teacher of amplitude 4, so that R(γ_τ) ≈ 10 is far from 1 (√R and R are distinguishable)
    big = {"kind": "teacher", "weights": [[1.5]], "coefficients": [4.0]}
    cfg = _grid_cfg(problem__target=big)
    rg = float(problem_from_config(cfg).constants()["risk_at_prior"])
    assert rg > 5
    tau, n = cfg["regularization"]["tau"], cfg["solver"]["logz_samples"]
    hi = 1e-6 / eps * tau / np.sqrt(rg)  # the β at θ = 1e-6/ε
    assert refused("exceeds", regularization__beta=1.5 * hi, problem__target=big)
    assert not refused(regularization__beta=hi / 1.5, problem__target=big)
    lo = 1e6 * eps * np.log(n) / rg * tau  # the β at β/τ = 1e6·ε·ln n / R(γ_τ)
    assert refused("so small", regularization__beta=lo / 1.5, problem__target=big)
    assert not refused(regularization__beta=1.5 * lo, problem__target=big)


def test_memory_refusal_is_at_the_estimate_and_counts_float64_arrays(monkeypatch):
    """check_memory refuses iff its estimate exceeds BOLT_MEMORY_LIMIT (probed at the estimate and one
    byte below); each solver's particle entry holds at least its float64 arrays: MFLD's step holds three
    (n, d) arrays (particles, gradient, noise),
    Picard's (n, d) particles plus the (n·buffer, d) field atoms of a closed-form problem (8 bytes each)."""
    from bolt.resources import check_memory, estimate_memory

    cfg = _grid_cfg()
    total = check_memory(cfg)
    monkeypatch.setenv("BOLT_MEMORY_LIMIT", str(total))
    assert check_memory(cfg) == total
    monkeypatch.setenv("BOLT_MEMORY_LIMIT", str(total - 1))
    with pytest.raises(ConfigError, match="needs an estimated"):
        check_memory(cfg)
    monkeypatch.delenv("BOLT_MEMORY_LIMIT")
    n, d = 1000, 1
    mf = _grid_cfg(solver__method="mfld", solver__particles=n)
    part = [b for what, key, b in estimate_memory(mf) if key == "solver.particles"]
    assert part and sum(part) >= 3 * n * d * 8, part  # W, its gradient and the noise of one step
    pc = _grid_cfg(solver__method="picard-mala", solver__particles=n, solver__chains=4)
    buf = pc["solver"]["buffer"]
    part = [b for what, key, b in estimate_memory(pc) if key == "solver.particles" and what.startswith("particles")]
    assert part and part[0] >= (n + n * buf) * d * 8, (part, buf)
