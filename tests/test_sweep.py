"""``bolt sweep``: sweep files, Dask execution, resume after SIGINT, failed points, aggregation."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bolt.errors import ConfigError
from bolt.sweep.aggregate import loglog_fit
from bolt.sweep.spec import load_sweep, parse_sweep

BASE = """
[problem]
dim = 1
[problem.target]
kind = "teacher"
weights = [[1.5]]
coefficients = [1.0]
[solver]
method = "grid"
grid_points = 101
"""

SWEEP = """
[sweep]
base = "base.toml"
steps = {steps}
[sweep.grid]
"regularization.beta" = [0.5, 1.0]
regularization.tau = [0.5, 1.0]
[[sweep.fit]]
y = "kl"
x = "regularization.beta"
"""


def _bolt(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "bolt.cli", *args], capture_output=True, text=True, timeout=timeout)


def _write(d: Path, steps='["run", "bounds"]', body=SWEEP) -> Path:
    (d / "base.toml").write_text(BASE)
    (d / "sweep.toml").write_text(body.format(steps=steps))
    return d / "sweep.toml"


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    f = _write(d, steps='["run"]')  # bounds in sweep.nc: test_study_smoke_sweep_runs
    r = _bolt("sweep", str(f), "--out", str(d / "out"), "--workers", "2")
    assert r.returncode == 0, r.stderr
    return d


def _open(path):
    import xarray as xr

    with xr.open_dataset(path) as ds:
        return ds.load()


def test_sweep_dataset_has_one_dim_per_parameter_and_equals_single_runs(grid_sweep):
    from bolt.commands import run_config

    ds = _open(grid_sweep / "out" / "sweep.nc")
    assert dict(ds.sizes) == {"beta": 2, "tau": 2}
    assert list(ds.beta.values) == [0.5, 1.0] and list(ds.tau.values) == [0.5, 1.0]
    assert ds.beta.attrs["param"] == "regularization.beta"
    for k in ("kl", "kl_se", "risk", "free_energy", "free_energy_se", "constants_kappa", "converged"):
        assert k in ds and ds[k].dims == ("beta", "tau"), k
    assert (ds.status.values == "done").all()
    spec = load_sweep(grid_sweep / "sweep.toml")
    for p in spec.points:  # each point alone, in this process, through bolt run's code path
        alone = grid_sweep / "alone" / p.name
        summary = run_config(p.config, alone, quiet=True)
        at = ds.sel(beta=p.values["regularization.beta"], tau=p.values["regularization.tau"])
        for k in ("kl", "risk", "free_energy", "log_z", "w2_squared_to_prior", "iterations"):
            assert float(at[k]) == summary[k], (p.name, k)
    # the point directories are ordinary run directories; the aggregates exist and are consistent
    point = grid_sweep / "out" / "points" / "beta=0.5_tau=1.0"
    assert (point / "config.toml").is_file() and (point / "results.nc").is_file()
    assert not (point / "bounds.json").exists()  # steps = ["run"] switches [output] bounds off
    csv = (grid_sweep / "out" / "sweep.csv").read_text().splitlines()
    assert len(csv) == 5 and csv[0].startswith("point,regularization.beta,regularization.tau,status")
    html = (grid_sweep / "out" / "sweep.html").read_text()
    assert "data:image/png;base64," in html and "Log-log fits" in html and "every point finished" in html
    fits = json.loads((grid_sweep / "out" / "fits.json").read_text())
    assert len(fits) == 2 and all(f["slope"] > 0 for f in fits)  # KL grows with beta


def test_existing_sweep_is_not_overwritten_without_resume(grid_sweep):
    out = grid_sweep / "out"
    before = (out / "points" / "beta=0.5_tau=0.5" / "summary.json").stat().st_mtime_ns
    r = _bolt("sweep", str(grid_sweep / "sweep.toml"), "--out", str(out), "--workers", "0")
    assert r.returncode == 2 and "--resume" in r.stderr and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    r = _bolt("sweep", str(grid_sweep / "sweep.toml"), "--out", str(out), "--resume", "--workers", "0", "--quiet")
    assert r.returncode == 0, r.stderr  # everything finished: nothing runs, the aggregates are rewritten
    assert (out / "points" / "beta=0.5_tau=0.5" / "summary.json").stat().st_mtime_ns == before
    recs = json.loads((out / "sweep.json").read_text())["points"]
    assert {p["status"] for p in recs} == {"skipped"}


def test_resume_refuses_a_point_directory_of_another_config(grid_sweep, tmp_path):
    (tmp_path / "base.toml").write_text(BASE.replace("grid_points = 101", "grid_points = 51"))
    (tmp_path / "sweep.toml").write_text(SWEEP.format(steps='["run"]'))
    r = _bolt("sweep", str(tmp_path / "sweep.toml"), "--out", str(grid_sweep / "out"), "--resume", "--workers", "0")
    assert r.returncode == 2 and "holds a run of another config (solver.grid_points = 101 there, 51" in r.stderr
    assert "Traceback" not in r.stderr


def test_sigint_half_way_then_resume_equals_uninterrupted(grid_sweep, tmp_path):
    f = _write(tmp_path, steps='["run"]')
    out = tmp_path / "out"
    # a handler (not SIG_IGN, which a background shell may have given us) so that the child starts with SIGINT live
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "bolt.cli", "sweep", str(f), "--out", str(out), "--workers",
                                 "1", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # its own process group, signalled as from a terminal
    finally:
        signal.signal(signal.SIGINT, previous)
    t0 = time.time()
    while time.time() - t0 < 240:
        if len(list(out.glob("points/*/summary.json"))) >= 2 or proc.poll() is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole process group, Dask's worker processes included
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("points/*/summary.json")}
    assert 2 <= len(finished) < 4
    r = _bolt("sweep", str(f), "--out", str(out), "--resume", "--workers", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    for name, mtime in finished.items():  # finished points were not recomputed
        assert (out / "points" / name / "summary.json").stat().st_mtime_ns == mtime
    recs = {p["name"]: p["status"] for p in json.loads((out / "sweep.json").read_text())["points"]}
    assert {n for n, s in recs.items() if s == "skipped"} == set(finished)
    assert not list(out.glob("points/*/.bolt.lock")) and not (out / ".bolt.lock").exists()
    resumed, full = _open(out / "sweep.nc"), _open(grid_sweep / "out" / "sweep.nc")
    for k in ("kl", "kl_se", "risk", "free_energy", "log_z", "w2_squared_to_prior", "iterations"):
        np.testing.assert_array_equal(resumed[k].values, full[k].values)


def test_failed_point_is_recorded_and_the_others_finish(tmp_path):
    body = SWEEP.replace('regularization.tau = [0.5, 1.0]', '"problem.dim" = [1, 2]').replace(
        '"regularization.beta" = [0.5, 1.0]', '"regularization.beta" = [0.5]')
    f = _write(tmp_path, steps='["run"]', body=body)
    r = _bolt("sweep", str(f), "--out", str(tmp_path / "out"), "--workers", "1")
    assert r.returncode == 1, r.stderr
    assert "point beta=0.5_dim=2 failed: problem.target.weights" in r.stderr and "Traceback" not in r.stderr
    ds = _open(tmp_path / "out" / "sweep.nc")
    assert ds.status.sel(dim=2).item() == "failed" and ds.status.sel(dim=1).item() == "done"
    assert "teacher neurons have dimension 1" in ds.error.sel(dim=2).item()
    assert np.isnan(ds.kl.sel(dim=2).item()) and np.isfinite(ds.kl.sel(dim=1).item())
    assert "problem.target.weights" in (tmp_path / "out" / "sweep.html").read_text()
    assert (tmp_path / "out" / "points" / "beta=0.5_dim=2" / "error.txt").is_file()


def test_unreachable_scheduler_is_a_one_line_error(tmp_path):
    f = _write(tmp_path, steps='["run"]')
    t0 = time.time()
    r = _bolt("sweep", str(f), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9", "--timeout", "2",
              "--quiet", timeout=60)
    assert time.time() - t0 < 30
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bolt: error: --scheduler: no Dask scheduler reachable"), r.stderr
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("body, message", [
    ('[sweep]\n[sweep.grid]\n"regularization.betta" = [1.0]\n', "point betta=1.0: regularization.betta: unknown key"),
    ('[sweep]\n[sweep.grid]\n"regularization.beta" = [1.0, -1.0]\n',
     "point beta=-1.0: regularization.beta: must be > 0"),
    ('[sweep]\n[sweep.grid]\n"solver.particles" = [80, "many"]\n',
     "point particles=many: solver.particles: expected an integer"),
    ('[sweep]\n[sweep.zip]\n"regularization.beta" = [1.0, 2.0]\n"regularization.tau" = [1.0]\n', "equal lengths"),
    ('[sweep]\n', "nothing to sweep"),
    ('[sweep]\nbase = "nope.toml"\n[sweep.grid]\n"regularization.beta" = [1.0]\n', "sweep.base: file not found"),
    ('[sweep]\nsteps = ["bounds"]\n[sweep.grid]\n"regularization.beta" = [1.0]\n', "sweep.steps"),
    ('[sweep]\nbogus = 1\n[sweep.grid]\n"regularization.beta" = [1.0]\n', "sweep.bogus: unknown key"),
    ('[sweep]\n[sweep.grid]\n"regularization.beta" = [1.0, 1.0]\n', "repeated value"),
    ('[sweep]\n[sweep.grid]\n"regularization.beta" = 1.0\n', "non-empty list"),
    ('[sweep]\n[sweep.grid]\n"regularization.beta" = [1.0]\n[[sweep.fit]]\ny = "kl"\nx = "regularization.tau"\n',
     "not a swept parameter"),
    ('[problem]\ndim = 1\n', "no [sweep] table"),
])
def test_sweep_file_errors_name_the_point_and_key(tmp_path, body, message):
    f = tmp_path / "s.toml"
    f.write_text(body)
    with pytest.raises(ConfigError, match=None) as e:
        load_sweep(f)
    assert message in str(e.value)


def test_sweep_file_error_on_the_command_line_touches_nothing(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[sweep]\n[sweep.grid]\n"regularization.tau" = [0.5, 0.0]\n')
    r = _bolt("sweep", str(f), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("bolt: error: point tau=0.0")
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()


def test_zip_parameters_share_one_dimension_and_names_are_readable():
    raw = {"sweep": {"grid": {"solver.seed": [0, 1], "problem.seed": [3]},
                     "zip": {"regularization.tau": [1.0, 0.5], "solver.particles": [1000, 2000]}},
           "solver": {"method": "mfld"}}
    spec = parse_sweep(raw)
    assert [d for d, _ in spec.dims()] == ["solver_seed", "problem_seed", "zip"]
    assert len(spec.points) == 4
    p = spec.points[1]
    assert p.name == "solver_seed=0_problem_seed=3_tau=0.5_particles=2000" and p.index == (0, 0, 1)
    assert p.config["solver"]["particles"] == 2000 and p.config["regularization"]["tau"] == 0.5
    assert p.config["output"]["bounds"] and not p.config["output"]["report"]  # from the default steps


def test_loglog_fit_recovers_a_power_law_and_its_error():
    x = np.array([0.1, 0.2, 0.4, 0.8])
    f = loglog_fit(x, 3 * x ** 2)
    assert f["slope"] == pytest.approx(2.0) and f["slope_se"] == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    z = []
    for _ in range(400):  # the weighted slope's SE is calibrated: z-scores have sd ≈ 1
        se = 0.05 * 3 * x ** 2
        y = 3 * x ** 2 + se * rng.normal(size=4)
        r = loglog_fit(x, y, se)
        z.append((r["slope"] - 2) / r["slope_se"])
    assert 0.85 < np.std(z) < 1.25


def test_sweep_module_has_docstrings():
    import importlib

    import bolt.sweep as sw

    for m in ("bolt.sweep", "bolt.sweep.spec", "bolt.sweep.runner", "bolt.sweep.aggregate", "bolt.sweep.html",
              "bolt.sweep.cli"):
        mod = importlib.import_module(m)
        for name in mod.__all__:
            obj = getattr(mod, name)
            assert not callable(obj) or (obj.__doc__ or "").strip(), f"{m}.{name}"
    assert os.path.exists(Path(sw.__file__).parents[2] / "docs" / "sweep.md")


ROOT = Path(__file__).resolve().parents[1]
STUDY_SWEEPS = sorted(p for p in ROOT.glob("studies/*/*.toml") if p.parent.name not in ("configs", "benchmarks"))
GRID_SMOKES = ["kl_bound", "maurey", "realizable", "regularisation"]


def test_every_study_sweep_file_is_valid():
    assert len(STUDY_SWEEPS) >= 12
    for f in STUDY_SWEEPS:
        spec = load_sweep(f)
        assert spec.points and spec.steps[0] == "run", f


# two of the grid studies in the default suite, the rest (and the heavier ones) under the slow marker
@pytest.mark.parametrize("study", GRID_SMOKES[:2] + [pytest.param(s, marks=pytest.mark.slow) for s in GRID_SMOKES[2:]]
                         + [pytest.param("w2_talagrand", marks=pytest.mark.slow),  # d = 2: 40 s
                            pytest.param("solver_agreement", marks=pytest.mark.slow)])
def test_study_smoke_sweep_runs(study, tmp_path):
    from bolt.sweep import run_sweep

    spec = load_sweep(ROOT / "studies" / study / "smoke.toml")
    res = run_sweep(spec, tmp_path / "out", workers=0, quiet=True)
    assert not res.failed, [res.records[n]["error"] for n in res.failed]
    ds = _open(tmp_path / "out" / "sweep.nc")
    assert np.isfinite(ds.kl.values).all() and np.isfinite(ds.free_energy.values).all()
    if "bounds" in spec.steps:
        for k in ("kl_bound_lhs", "kl_bound_rhs_se", "maurey_slope_lhs", "talagrand_outcome"):
            assert k in ds and ds[k].dims == ds.kl.dims, k
        assert (ds.talagrand_holds.values == 1).all()  # W2²/(2τ) ≤ KL holds for every µ


@pytest.mark.slow
def test_lazy_training_port_reproduces_run_py(tmp_path):
    from bolt.sweep import run_sweep

    spec = load_sweep(ROOT / "studies/lazy_training/smoke.toml")
    assert not run_sweep(spec, tmp_path / "sweep", workers=0, quiet=True).failed
    port = subprocess.run([sys.executable, str(ROOT / "studies/lazy_training/from_sweep.py"), str(tmp_path / "sweep"),
                           "--smoke"], capture_output=True, text=True, timeout=600)
    assert port.returncode == 0, port.stderr
    orig = subprocess.run([sys.executable, str(ROOT / "studies/lazy_training/run.py"), "--smoke", "--out",
                           str(tmp_path / "orig")], capture_output=True, text=True, timeout=600)
    assert orig.returncode == 0, orig.stderr
    a = json.loads((tmp_path / "sweep" / "results.json").read_text())
    b = json.loads((tmp_path / "orig" / "results.json").read_text())
    assert len(a) == len(b) == 4
    for x, y in zip(a, b):  # same µ*, same random stream: the same numbers
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-9, abs=1e-12), k


def test_loglog_fit_without_errors_is_ols_with_n_minus_2_degrees_of_freedom():
    """Without standard errors the fit is OLS of log y on log x: slope and slope SE are scipy's linregress's."""
    from scipy.stats import linregress

    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    y = 3 * x**-1.0 * np.exp(np.array([0.05, -0.1, 0.02, 0.08, -0.04, 0.03]))
    got, ref = loglog_fit(x, y), linregress(np.log(x), np.log(y))
    assert got["slope"] == pytest.approx(ref.slope, abs=1e-12)
    assert got["slope_se"] == pytest.approx(ref.stderr, abs=1e-12)


def test_fit_range_includes_its_end_points():
    """``x_min``/``x_max`` (docs/sweep.md: fit only this range) are inclusive: the fit over [0.5, 2] of
    four β values uses exactly the three inside, as loglog_fit on them does by hand."""
    import xarray as xr

    from bolt.sweep.aggregate import fits

    x = [0.25, 0.5, 1.0, 2.0]
    spec = parse_sweep({"sweep": {"grid": {"regularization.beta": x},
                                  "fit": [{"y": "kl", "x": "regularization.beta", "x_min": 0.5, "x_max": 2.0}]}})
    dims = spec.dims()
    y = np.array([1.0, 0.3, 0.5, 2.5])
    ds = xr.Dataset({"kl": ((dims[0][0],), y)}, coords={"beta": ((dims[0][0],), np.array(x))},
                    attrs={"params": json.dumps(spec.params), "dims": json.dumps({d: ks for d, ks in dims})})
    (r,) = fits(spec, ds)
    ref = loglog_fit(np.array(x[1:]), y[1:])
    assert r["n"] == 3 and r["slope"] == pytest.approx(ref["slope"], rel=1e-12)


@pytest.mark.parametrize("body, message", [
    ('[sweep]\n[sweep.zip]\n"regularization.beta" = [1.0, 1.0]\n"regularization.tau" = [0.5, 0.5]\n',
     "repeated combination"),
    ('[sweep]\nsteps = ["run", "bounds", "bounds"]\n[sweep.grid]\n"regularization.beta" = [1.0]\n',
     "name each step once"),
    ('[sweep]\n[sweep.grid]\nbeta = [1.0]\n', "expected a dotted config key"),
    ('[sweep]\n[sweep.grid]\n"regularization.beta" = [1.0]\n[sweep.zip]\n"regularization.beta" = [2.0]\n',
     "in both [sweep.grid] and [sweep.zip]"),
])
def test_sweep_file_refuses_points_that_would_run_twice_or_cannot_be_set(tmp_path, body, message):
    """Documented refusals of sweep.spec (a point would run twice, a step named twice, a key that is
    not a dotted config key, a key swept on two dimensions): each names its cause."""
    f = tmp_path / "s.toml"
    f.write_text(body)
    with pytest.raises(ConfigError) as e:
        load_sweep(f)
    assert message in str(e.value), str(e.value)
