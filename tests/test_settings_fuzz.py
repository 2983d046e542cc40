"""Settings do what they say, bad input is one line with no traceback, and a property-based fuzz of the inputs.

Issue 29, items 6, 7, 9, 10, 12: the grid's tolerance, MFLD's horizon, ``bolt bridge --inner``, a checkpoint
beyond the iteration cap, ``BOLT_PLATFORM``, an early Ctrl-C, configs and sweep files outside the
documented schema (docs/config.md, docs/sweep.md), seeds beyond 64 bits and sizes beyond memory. The
fuzz tests draw configs, sweep files and ``bolt bridge``/``bolt dynamics`` flags from the schema with
values outside it and call the validation in-process; a few subprocess cases check the exit code.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from argparse import Namespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bolt.config import DEFAULT_CONFIG, load_config, problem_from_config, resolve_config
from bolt.errors import BoltError, ConfigError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _bolt(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "bolt.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=None if env is None else {**os.environ, **env})


def _one_line(r, code=2):
    assert r.returncode == code, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("bolt: error:"), r.stderr
    assert "Traceback" not in r.stderr


def _main_one_line(capsys, argv, match):
    from bolt.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bolt: error:") and match in err, err
    return err


GRID_D1 = {"problem": {"dim": 1, "target": {"kind": "teacher", "weights": [[1.5]]}},
           "regularization": {"beta": 1.5, "tau": 0.5},
           "solver": {"method": "grid", "grid_points": 101},
           "output": {"report": False, "bounds": False}}


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    """A run directory as `bolt bridge` and `bolt dynamics` read it before any work: its config.toml and
    summary.json (their flags are refused before the results are loaded)."""
    from bolt.config import dump_toml

    out = tmp_path_factory.mktemp("settings") / "run"
    out.mkdir()
    (out / "config.toml").write_text(dump_toml(resolve_config(GRID_D1)))
    (out / "summary.json").write_text(json.dumps({"seed": 0, "method": "grid"}))
    return out


# ----------------------------------------------------------------------------- item 6: settings that act
def test_grid_tolerance_is_the_l1_tolerance_of_the_iteration():
    """docs/config.md: for grid, solver.tolerance is the L1 tolerance ‖Γ(p) − p‖₁. It used to be ignored
    (5.0 and 1e-15 both ran 23 iterations); a loose tolerance now stops sooner, at a residual below it."""
    from bolt.commands import solver_settings
    from bolt.solve import solve

    raw = json.loads(json.dumps(GRID_D1))
    cfg = resolve_config(raw)
    assert cfg["solver"]["tolerance"] == 1e-12  # the grid's own default when the config does not set it
    pb = problem_from_config(cfg)
    tight = solve(pb, "grid", **solver_settings(cfg))
    raw["solver"]["tolerance"] = 1e-3
    loose_cfg = resolve_config(raw)
    loose = solve(pb, "grid", **solver_settings(loose_cfg))
    assert loose.settings["tolerance"] == 1e-3 and tight.settings["tolerance"] == 1e-12
    assert tight.converged and loose.converged
    assert loose.trace["residual"][-1] <= 1e-3 < loose.trace["residual"][0]
    assert tight.trace["residual"][-1] <= 1e-12
    assert loose.iterations < tight.iterations
    raw["solver"]["tolerance"] = 5.0  # an L1 distance of probability vectors is at most 2
    with pytest.raises(ConfigError, match="solver.tolerance"):
        resolve_config(raw)


@pytest.mark.parametrize("horizon, step", [(1.0, 100.0), (1e-300, 0.0), (10.0, 0.0), (3.0, 0.07)])
def test_mfld_time_grid_ends_at_the_horizon(horizon, step):
    """steps per block · blocks · h = T exactly, with h at most the step asked for (0: 0.02). It used to be
    round(T/h/blocks) steps of h: h = 100, T = 1 ran to t = 4000; T = 1e-300 ran to t = 0.8; T = 10 to 9.6."""
    from bolt.gibbs.mfld import mfld_time_grid

    h, steps = mfld_time_grid(horizon, step, 40)
    assert steps >= 1 and h <= (step or 0.02)
    assert 40 * steps * h == pytest.approx(horizon, rel=1e-12)
    assert steps == max(1, math.ceil(horizon / ((step or 0.02) * 40) - 1e-9))


@pytest.mark.slow
def test_mfld_run_reaches_its_horizon_and_no_further():
    from bolt.gibbs.mfld import solve_mfld

    cfg = resolve_config({"problem": {"dim": 1, "target": {"kind": "linear", "a": [1.0]}}})
    pb = problem_from_config(cfg)
    import jax

    res = solve_mfld(jax.random.PRNGKey(0), pb, particles=16, step_size=100.0, horizon=1.0, blocks=4,
                     refresh_steps=5)
    assert res.trace["time"][-1] == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(res.trace["time"], [0.25, 0.5, 0.75, 1.0], rtol=1e-12)
    assert res.settings["step_size"] == pytest.approx(0.25)


@pytest.mark.parametrize("inner", ["0", "-4", "1", "3"])
def test_bridge_inner_outside_its_range_is_refused(grid_run, capsys, inner):
    """--inner 0 and -4 were accepted and recorded while 2 draws were used (two halves of max(1, M//2))."""
    _main_one_line(capsys, ["bridge", str(grid_run), "--quiet", "--inner", inner], "--inner")
    assert not (grid_run / "bridge.json").exists()


@pytest.mark.parametrize("iteration, cap, ok", [(10**6, 8, False), (8, 8, False), (7, 8, True), (0, 8, True),
                                                (-1, 8, False), (0, 1, True), (1, 1, False)])
def test_checkpoint_iteration_must_lie_below_the_cap(iteration, cap, ok):
    from bolt.gibbs.picard import check_resume_iteration

    if ok:
        assert check_resume_iteration(np.asarray(iteration), cap) == iteration
    else:
        with pytest.raises(BoltError, match=r"resume: the checkpoint's iteration"):
            check_resume_iteration(iteration, cap)


def test_picard_refuses_a_checkpoint_beyond_the_cap_before_any_work():
    """A checkpoint with iteration = 10⁶ resumed to `iterations: 1000001` under max_iterations = 8."""
    import jax

    from bolt.gibbs.picard import solve_picard

    pb = problem_from_config(resolve_config({"problem": {"dim": 1, "target": {"kind": "linear", "a": [1.0]}}}))
    with pytest.raises(BoltError, match=r"resume: the checkpoint's iteration 1000000"):
        solve_picard(jax.random.PRNGKey(0), pb, inner="mala", particles=40, chains=4, max_iterations=8,
                     checkpoint={"iteration": np.asarray(10**6)})


def test_bolt_platform_is_applied_before_jax_starts(tmp_path):
    """`import bolt` and the command line's parser import no JAX, so BOLT_PLATFORM applies: an unknown
    platform is one line and exit 2 (it ran on the CPU with exit 0)."""
    code = ("import sys, bolt, bolt.cli; bolt.cli._build_parser(); import bolt.dynamics, bolt.sweep; "
            "print('jax' in sys.modules); print(callable(bolt.make_problem), callable(bolt.solve))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["False", "True", "True"], r.stderr
    r = _bolt("problem", env={"BOLT_PLATFORM": "tpu_xyz"})
    _one_line(r)
    assert "BOLT_PLATFORM" in r.stderr and "tpu_xyz" in r.stderr


# ----------------------------------------------------------------------------- item 7: an early Ctrl-C
QUICK_MFLD = """
[problem]
dim = 1
[problem.target]
kind = "linear"
a = [1.0]
[solver]
method = "mfld"
particles = 16
horizon = 0.5
[output]
report = false
bounds = false
"""


@pytest.mark.parametrize("after", [1.0, pytest.param(2.0, marks=pytest.mark.slow)])
def test_ctrl_c_in_the_first_seconds_stops_the_run(tmp_path, after):
    """The KeyboardInterrupt used to land in JAX's GC callback ("Exception ignored in: _xla_gc_callback") and
    the run went on to exit 0 (6 of 6 tries at 1–5 s); now: status 130 and no finished run."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(QUICK_MFLD)
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "bolt.cli", "run", str(cfg), "--out", str(out), "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, err[-2000:]
    assert "bolt: interrupted" in err and "Exception ignored" not in err and "Traceback" not in err
    assert not (out / "summary.json").exists()


def test_an_interrupt_inside_a_gc_callback_is_sent_again(monkeypatch):
    """The deterministic core of the fix: where Python would swallow the exception (a GC callback, as
    JAX's `_xla_gc_callback`), the handler re-sends the signal instead of raising; elsewhere it raises."""
    import gc
    import threading

    from bolt import cli

    sent = []
    monkeypatch.setattr(cli.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    seen = []

    def callback(phase, info):
        if phase == "start":
            seen.append(cli._in_swallowing_context(sys._getframe()))
            cli._interrupt(signal.SIGINT, sys._getframe())  # would be swallowed if it raised here

    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)
    assert seen and all(seen)
    for t in threading.enumerate():  # the re-send runs on a timer thread
        if isinstance(t, threading.Timer):
            t.join(5)
    assert sent and all(sig == signal.SIGINT and pid == os.getpid() for pid, sig in sent)
    assert not cli._in_swallowing_context(sys._getframe())
    with pytest.raises(KeyboardInterrupt):
        cli._interrupt(signal.SIGINT, sys._getframe())


# ----------------------------------------------------------------------------- item 9: configs
@pytest.mark.parametrize("raw, field", [
    ({"problem": {"dim": 0}, "solver": {"method": "grid"}}, "problem.dim"),
    ({"problem": {"dim": -2}, "solver": {"method": "grid"}}, "problem.dim"),
    ({"problem": {"dim": -2}}, "problem.dim"),
    ({"problem": {"dim": 1, "activation": "erf_bias"}}, "problem.dim"),
    ({"problem": {"target": {"kind": ["teacher"]}}}, "problem.target.kind"),
    ({"problem": {"target": {"kind": {"a": 1}}}}, "problem.target.kind"),
    ({"solver": {"logz_samples": 1}}, "solver.logz_samples"),
    ({"solver": {"method": "mfld", "logz_samples": 1}}, "solver.logz_samples"),
    ({"dynamics": {"seed": 2**70}}, "dynamics.seed"),
])
def test_config_errors_name_the_field(raw, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        resolve_config(raw)


def test_logz_samples_two_is_the_edge():
    assert resolve_config({"solver": {"logz_samples": 2}})["solver"]["logz_samples"] == 2


def test_deeply_nested_arrays_are_one_line(tmp_path, capsys):
    """~600 nested arrays were a RecursionError of 3002 lines, in run configs and sweep files alike."""
    from bolt.sweep.spec import load_sweep

    f = tmp_path / "deep.toml"
    f.write_text("[problem]\ndim = " + "[" * 600 + "]" * 600 + "\n")
    with pytest.raises(ConfigError, match="too deeply"):
        load_config(f)
    _main_one_line(capsys, ["problem", str(f)], "too deeply")
    s = tmp_path / "sweep.toml"
    s.write_text("[sweep.grid]\n\"regularization.beta\" = " + "[" * 600 + "]" * 600 + "\n")
    with pytest.raises(ConfigError, match="too deeply"):
        load_sweep(s)


SWEEP_BODY = """[sweep]
steps = ["run"]
[sweep.grid]
"regularization.beta" = [0.5, 1.0]
"solver.kernel" = ["mala", "ula"]
[problem]
dim = 1
[problem.target]
kind = "linear"
a = [1.0]
"""


def test_sweep_file_with_a_byte_order_mark_is_read_like_a_run_config(tmp_path):
    from bolt.sweep.spec import load_sweep

    f = tmp_path / "s.toml"
    f.write_bytes("\ufeff".encode() + SWEEP_BODY.encode())
    spec = load_sweep(f)
    assert len(spec.points) == 4
    base = tmp_path / "base.toml"
    base.write_bytes("\ufeff[regularization]\ntau = 0.25\n".encode())
    f.write_text(SWEEP_BODY.replace("[sweep]\n", '[sweep]\nbase = "base.toml"\n'))
    assert load_sweep(f).points[0].config["regularization"]["tau"] == 0.25


# ----------------------------------------------------------------------------- item 10: sweep fits
@pytest.mark.parametrize("fit, key", [
    ({"y": "kl", "x": ["regularization.beta"]}, "sweep.fit[0].x"),
    ({"y": ["kl"], "x": "regularization.beta"}, "sweep.fit[0].y"),
    ({"y": "kl", "x": "solver.kernel"}, "sweep.fit[0].x"),
    ({"y": "status", "x": "regularization.beta"}, "sweep.fit[0].y"),
    ({"y": "kl", "x": "regularization.beta", "x_min": "low"}, "sweep.fit[0].x_min"),
    ({"y": "kl", "x": "regularization.beta", "x_max": math.inf}, "sweep.fit[0].x_max"),
    ({"y": "kl", "x": "regularization.beta", "x_min": True}, "sweep.fit[0].x_min"),
])
def test_sweep_fits_are_checked_with_the_sweep_file(fit, key):
    """Some of these failed before the sweep with a TypeError, the rest after every point had run."""
    import tomllib

    from bolt.sweep.spec import parse_sweep

    raw = tomllib.loads(SWEEP_BODY)
    raw["sweep"]["fit"] = [fit]
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
        parse_sweep(raw)


def test_a_text_quantity_in_a_fit_gives_a_row_not_a_crash():
    """A fit of a text quantity that the sweep file cannot know (a summary string) is a NaN row saying so."""
    import tomllib

    import xarray as xr

    from bolt.sweep.aggregate import fits
    from bolt.sweep.spec import parse_sweep

    raw = tomllib.loads(SWEEP_BODY)
    del raw["sweep"]["grid"]["solver.kernel"]
    raw["sweep"]["fit"] = [{"y": "method", "x": "regularization.beta"}, {"y": "kl", "x": "regularization.beta"}]
    spec = parse_sweep(raw)
    ds = xr.Dataset({"method": (("beta",), np.array(["grid", "grid"], object)),
                     "kl": (("beta",), np.array([0.1, 0.4])), "kl_se": (("beta",), np.array([0.01, 0.04]))},
                    coords={"beta": ("beta", [0.5, 1.0])}, attrs={"params": json.dumps(spec.params),
                           "dims": json.dumps({"beta": ["regularization.beta"]})})
    rows = fits(spec, ds)
    assert rows[0]["n"] == 0 and "not a numeric quantity" in rows[0]["method"] and math.isnan(rows[0]["slope"])
    assert rows[1]["slope"] == pytest.approx(2.0)


def test_bad_fit_on_the_command_line_runs_nothing(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(SWEEP_BODY + '[[sweep.fit]]\ny = "status"\nx = "regularization.beta"\n')
    _main_one_line(capsys, ["sweep", str(f), "--out", str(tmp_path / "out")], "sweep.fit[0].y")
    assert not (tmp_path / "out" / "points").exists()


# ----------------------------------------------------------------------------- item 12: seeds and sizes
def test_seed_beyond_64_bits_is_refused():
    from bolt.config import check_seed

    with pytest.raises(ConfigError, match="seed"):
        check_seed(2**70)
    assert check_seed(2**63 - 1) == 2**63 - 1 and check_seed(-(2**63)) == -(2**63)
    import jax

    jax.random.PRNGKey(2**63 - 1), jax.random.PRNGKey(-(2**63))  # the edges make keys


@pytest.mark.parametrize("argv, match", [
    (["bridge", "--seed", str(2**70)], "--seed"),
    (["bridge", "--steps", str(10**12)], "--steps"),
    (["bridge", "--steps", "0"], "--steps"),
    (["bridge", "--particles", str(10**9)], "--particles"),
    (["dynamics", "--seed", str(2**70)], "dynamics.seed"),
    (["dynamics", "--particles", str(10**10)], "dynamics.particles"),
    (["dynamics", "--minibatch", str(10**10)], "dynamics.minibatch"),
    (["dynamics", "--steps", str(2**63 - 1)], "dynamics.steps"),
    (["dynamics", "--step-size", "nan", "--allow-any-horizon"], "dynamics.step_size"),
    (["dynamics", "--step-size", "inf", "--allow-any-horizon"], "dynamics.step_size"),
    (["dynamics", "--step-size", "inf"], "dynamics.step_size"),
])
def test_bridge_and_dynamics_flags_are_checked_before_any_work(grid_run, capsys, argv, match):
    """OverflowError (seed 2⁷⁰), NumPy asking for 7.28 TiB (--steps 10¹²), XLA out of memory, IndexError
    (--step-size nan): now one line naming the flag or key, and nothing written."""
    _main_one_line(capsys, [argv[0], str(grid_run), "--quiet", *argv[1:]], match)
    assert not (grid_run / "bridge.json").exists() and not (grid_run / "dynamics.json").exists()


def test_summary_seed_beyond_64_bits_is_one_line(grid_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(grid_run, run)
    s = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps(dict(s, seed=2**70)))
    _main_one_line(capsys, ["bridge", str(run), "--quiet"], "summary.json: seed")


@pytest.mark.parametrize("value", ["inf", "nan", "-5", "lots"])
def test_memory_limit_must_be_a_finite_number(monkeypatch, value):
    from bolt.resources import available_memory

    monkeypatch.setenv("BOLT_MEMORY_LIMIT", value)
    with pytest.raises(ConfigError, match="BOLT_MEMORY_LIMIT"):
        available_memory()


def test_bridge_and_dynamics_memory_estimates_grow_with_their_sizes():
    from bolt.resources import estimate_bridge_memory, estimate_dynamics_memory

    total = lambda items: sum(b for _, _, b in items)  # noqa: E731
    assert total(estimate_bridge_memory(1, 1000, 10**12, 32)) > 8 * 10**12  # the time grid alone: 8 TB
    dyn = dict(DEFAULT_CONFIG["dynamics"])
    small = total(estimate_dynamics_memory(dyn, 3, 3))
    assert total(estimate_dynamics_memory(dict(dyn, particles=10**10), 3, 3)) > 8 * 10**10 * 3 * 8
    assert total(estimate_dynamics_memory(dict(dyn, steps=2**62), 3, 3)) > 2**62 * 8 * 8
    assert total(estimate_dynamics_memory(dict(dyn, minibatch=10**10), 3, 3)) > 10**10 * 8 * 8
    assert small < 2**30


# ----------------------------------------------------------------------------- the fuzz
def _huge_ints():
    return st.sampled_from([0, -1, 1, 2, -(2**63), 2**63 - 1, 2**63, 2**70, 10**12])


def _bad_values():
    """Values of every TOML type and none that the schema expects: integer and float edges (0, negatives,
    beyond 64 bits, NaN, inf, subnormal), booleans, strings, flat and nested arrays, tables."""
    return st.one_of(
        st.sampled_from([0, -1, -2, 1, 2, 3, -(2**63), 2**63 - 1, 2**63, 2**70, 10**12]),
        st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-320, 1e308, 0.5, 2.0, 5.0, -1.0]),
        st.booleans(), st.sampled_from(["", "grid", "teacher", "x" * 9, "0"]),
        st.lists(st.integers(-3, 3), max_size=3), st.lists(st.lists(st.floats(-2, 2), max_size=2), max_size=2),
        st.dictionaries(st.sampled_from(["kind", "a", "x"]), st.integers(0, 2), max_size=2))


_TARGETS = [{"kind": "teacher", "weights": [[1.0]], "coefficients": [1.0]}, {"kind": "linear", "a": [1.0]},
            {"kind": "realizable", "mean": [0.5]}, {"kind": "data"}]
_SCHEMA = [(section, key) for section, body in DEFAULT_CONFIG.items() for key in body if key != "target"]
_SCHEMA += [("problem.target", k) for k in ("kind", "weights", "coefficients", "a", "mean", "nodes")]


@st.composite
def raw_configs(draw):
    """A small valid config (d = 1 or 2, any solver method and target kind) with one to three documented
    keys — now and then an unknown one — set to a value outside the schema: a wrong type, an edge, a
    number beyond its range or beyond 64 bits, NaN, a nested array or a table."""
    dim = draw(st.sampled_from([1, 2]))
    target = dict(draw(st.sampled_from(_TARGETS)))
    for k in ("weights", "a", "mean"):
        if k in target:
            target[k] = [[1.0] * dim] if k == "weights" else [1.0] * dim
    raw = {"problem": {"dim": dim, "input_samples": 64, "target": target},
           "solver": {"method": draw(st.sampled_from(["picard-mala", "picard-nuts", "mfld", "grid"])),
                      "particles": 64, "chains": 4, "logz_samples": 1000}}
    for _ in range(draw(st.integers(1, 3))):
        section, key = draw(st.sampled_from(_SCHEMA + [("solver", "unknown_key"), ("unknown", "x")]))
        value = draw(_bad_values())
        if section == "problem.target":
            raw["problem"]["target"][key] = value
        else:
            raw.setdefault(section, {})[key] = value
    return raw


@FUZZ
@given(raw=raw_configs())
def test_fuzz_config_validation_refuses_cleanly(raw, monkeypatch):
    """resolve_config and the memory estimate of `bolt run` return or raise ConfigError — nothing else."""
    from bolt.resources import check_memory

    monkeypatch.setenv("BOLT_MEMORY_LIMIT", str(2**31))
    try:
        cfg = resolve_config(raw)
        check_memory(cfg)
        check_memory(cfg, solve=False)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=raw_configs())
def test_fuzz_bolt_problem_and_run_checks_refuse_cleanly(raw, monkeypatch):
    """`bolt problem`'s and `bolt run`'s checks up to the solve (memory, the problem and its constants, the
    valid ranges) in-process: a result or a BoltError — never another exception."""
    from bolt.commands import check_problem, check_run

    monkeypatch.setenv("BOLT_MEMORY_LIMIT", str(2**28))
    try:
        cfg = resolve_config(raw)
        check_run(cfg)
        pb = problem_from_config(cfg)
        pb.constants()
        check_problem(cfg, pb)
    except BoltError as exc:
        assert str(exc)


_SWEEPABLE = ["regularization.beta", "regularization.tau", "solver.method", "solver.seed", "problem.dim",
              "solver.particles", "sweep.base", "beta", "output.max_draws"]


@st.composite
def raw_sweeps(draw):
    """A valid sweep (β over [0.5, 1], perhaps the method over strings) with one or two of its parts — the
    grid, the zip, the steps, a fit's y, x, x_min, x_max — replaced by something outside docs/sweep.md."""
    grid = {"regularization.beta": [0.5, 1.0]}
    if draw(st.booleans()):
        grid["solver.method"] = ["grid", "mfld"]
    fit = {"y": "kl", "x": "regularization.beta"}
    sweep = {"grid": grid, "steps": ["run"], "fit": [fit]}
    for _ in range(draw(st.integers(1, 2))):
        part = draw(st.sampled_from(["grid", "zip", "steps", "y", "x", "x_min", "x_max", "fit", "key"]))
        bad = draw(st.one_of(_bad_values(), st.sampled_from(["status", "error", "solver.method", "wall_s",
                                                             "bounds_x_outcome", "kl"])))
        if part in ("y", "x", "x_min", "x_max"):
            fit[part] = bad
        elif part == "grid":
            values = st.one_of(st.lists(_bad_values(), max_size=3), _bad_values())
            grid[draw(st.sampled_from(_SWEEPABLE))] = draw(values)
        elif part == "zip":
            sweep["zip"] = {draw(st.sampled_from(_SWEEPABLE)): draw(st.one_of(st.lists(_bad_values(), max_size=2),
                                                                            _bad_values()))}
        elif part == "key":
            fit["z"] = bad
        else:
            sweep[part] = bad
    return {"sweep": sweep, "problem": {"dim": 1, "target": {"kind": "linear", "a": [1.0]}}}


@FUZZ
@given(raw=raw_sweeps())
def test_fuzz_sweep_validation_refuses_cleanly(raw):
    """parse_sweep (what `bolt sweep` checks before any point runs) returns a spec or raises ConfigError."""
    from bolt.sweep.spec import parse_sweep

    try:
        spec = parse_sweep(raw)
    except ConfigError as exc:
        assert str(exc)
        return
    for f in spec.fits:  # every fit that passed is computable after the sweep
        assert isinstance(f["y"], str) and f["x"] in spec.params
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in
                   (spec.grid.get(f["x"]) or spec.zip[f["x"]]))


_FLAG_VALUES = st.one_of(_huge_ints(), st.integers(-5, 50))


@FUZZ
@given(particles=_FLAG_VALUES, steps=_FLAG_VALUES, inner=_FLAG_VALUES, seed=st.one_of(st.none(), _huge_ints()),
       drift=st.sampled_from(["potential", "samples"]))
def test_fuzz_bridge_flags_refuse_cleanly(grid_run, monkeypatch, particles, steps, inner, seed, drift):
    from bolt.dynamics.cli import check_bridge_args

    monkeypatch.setenv("BOLT_MEMORY_LIMIT", str(2**33))
    args = Namespace(run_dir=str(grid_run), particles=particles, steps=steps, inner=inner, seed=seed, drift=drift)
    try:
        got = check_bridge_args(args)
    except ConfigError as exc:
        assert str(exc)
        return
    assert particles >= 10 and steps >= 1 and (drift == "samples" or (inner >= 2 and inner % 2 == 0))
    assert got is None or -(2**63) <= got < 2**63


@FUZZ
@given(particles=st.one_of(st.none(), _FLAG_VALUES), steps=st.one_of(st.none(), _FLAG_VALUES),
       minibatch=st.one_of(st.none(), _FLAG_VALUES), repetitions=st.one_of(st.none(), _FLAG_VALUES),
       seed=st.one_of(st.none(), _huge_ints()),
       step_size=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       records=_FLAG_VALUES, reference=_FLAG_VALUES)
def test_fuzz_dynamics_flags_refuse_cleanly(grid_run, monkeypatch, particles, steps, minibatch, repetitions, seed,
                                            step_size, records, reference):
    from bolt.dynamics.tracking_cli import check_dynamics_args

    monkeypatch.setenv("BOLT_MEMORY_LIMIT", str(2**33))
    overrides = {"kind": None, "particles": particles, "steps": steps, "minibatch": minibatch,
                 "repetitions": repetitions, "seed": seed, "step_size": step_size, "allow_any_horizon": True}
    args = Namespace(run_dir=str(grid_run), records=records, reference_samples=reference, greedy_steps=None)
    try:
        check_dynamics_args(args, overrides)
    except ConfigError as exc:
        assert str(exc)
        return
    assert step_size is None or (math.isfinite(step_size) and step_size >= 0)
    assert seed is None or -(2**63) <= seed < 2**63


@pytest.mark.parametrize("body, match", [
    ('[problem]\ndim = -2\n[solver]\nmethod = "grid"\n', "problem.dim"),
    ('[problem.target]\nkind = ["teacher"]\n', "problem.target.kind"),
    ("[solver]\nlogz_samples = 1\n", "solver.logz_samples"),
    ("[solver]\nseed = 1180591620717411303424\n", "solver.seed"),
])
def test_fuzz_findings_on_the_command_line(tmp_path, capsys, body, match):
    """A few of the refusals end to end through `bolt run` and `bolt problem`: exit 2, one line, nothing
    written (the logz_samples one used to fail after the whole solve, leaving a directory that could not
    finish)."""
    f = tmp_path / "c.toml"
    f.write_text(body)
    _main_one_line(capsys, ["run", str(f), "--out", str(tmp_path / "out")], match)
    assert not (tmp_path / "out").exists()
    _main_one_line(capsys, ["problem", str(f)], match)


def test_a_config_error_in_a_subprocess_is_one_line(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[problem]\ndim = 0\n[solver]\nmethod = "grid"\n')
    r = _bolt("run", str(f), "--out", str(tmp_path / "out"))
    _one_line(r)
    assert "problem.dim" in r.stderr and not (tmp_path / "out").exists()
