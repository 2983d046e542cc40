"""Run-directory integrity (issue 29): nothing lost, nothing mixed, nothing foreign.

The manifest (``RUN_DIR/manifest.json``: the SHA-256 of every file a command wrote, with the command and
its invocation) is checked before a command reads the directory; the contents of ``results.nc``,
``summary.json``, ``bridge.json`` and the checkpoint are validated for directories without one. A killed
command is simulated in-process by raising at a fault point of :mod:`bolt._faults` (the files are then
exactly what a SIGKILL there leaves); the disk-full cases run ``bolt`` on a small tmpfs in a user
namespace (``unshare -rm``) and are skipped where that cannot be mounted.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bolt.cli import main
from bolt.commands import run_config, run_state
from bolt.config import resolve_config
from bolt.errors import ResultsError

GRID = {"problem": {"dim": 1, "target": {"kind": "teacher", "weights": [[1.5]], "coefficients": [1.0]}},
        "solver": {"method": "grid", "grid_points": 101}, "output": {"report": False, "bounds": True}}


def _cfg(**over):
    cfg = json.loads(json.dumps(GRID))
    for k, v in over.items():
        sec, key = k.split("__")
        cfg.setdefault(sec, {})[key] = v
    return resolve_config(cfg)


class Killed(BaseException):
    """What a SIGKILL at a fault point leaves: nothing after the point runs."""


def _kill_at(monkeypatch, point):
    import bolt._faults

    def fault(name):
        if name == point:
            raise Killed(point)

    monkeypatch.setattr(bolt._faults, "fault_point", fault)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished grid runs (bounds written): β = 1 and β = 2."""
    d = tmp_path_factory.mktemp("integrity")
    run_config(_cfg(), d / "b1", quiet=True)
    run_config(_cfg(regularization__beta=2.0), d / "b2", quiet=True)
    return d


@pytest.fixture
def run(runs, tmp_path):
    shutil.copytree(runs / "b1", tmp_path / "run")
    return tmp_path / "run"


def _cli(capsys, *args):
    rc = main(list(args))
    err = capsys.readouterr().err
    return rc, err


def _one_line_refusal(rc, err, *words):
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, (w, err)


def _rewrite_results(run, fn, *, keep_manifest=False):
    """Replace the particles group of results.nc by ``fn(particles_dataset)`` (a pre-manifest directory unless
    ``keep_manifest``: content validation is what is tested)."""
    import warnings

    import arviz as az

    path = run / "results.nc"
    idata = az.from_netcdf(path)
    groups = {g: getattr(idata, g).load() for g in idata.groups()}
    groups["particles"] = fn(groups["particles"].copy(deep=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        new = az.InferenceData(**groups)
    path.unlink()
    new.to_netcdf(str(path))
    if not keep_manifest:
        (run / "manifest.json").unlink(missing_ok=True)


# ------------------------------------------------------------------ item 5: the manifest


def test_every_file_a_run_writes_is_in_the_manifest_with_its_hash(run):
    from bolt.io import file_sha256

    m = json.loads((run / "manifest.json").read_text())["files"]
    assert set(m) == {"config.toml", "results.nc", "summary.json", "bounds.json"}
    for name, e in m.items():
        assert e["sha256"] == file_sha256(run / name) and e["command"] == "run" and "previous" not in e, name
    assert len({e["session"] for e in m.values()}) == 1


@pytest.mark.parametrize("command", ["bounds", "bridge", "report"])
def test_a_results_nc_copied_from_another_run_is_refused(runs, run, capsys, command):
    """β = 2's results.nc in a β = 1 run: every command that reads it refuses, naming the file and the command
    that writes it afresh (today: bounds 'kl_bound violated', bridge 'energy identity violated', exit 0)."""
    shutil.copy(runs / "b2" / "results.nc", run / "results.nc")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    rc, err = _cli(capsys, command, str(run), *(["--quiet"] if command == "bridge" else []))
    _one_line_refusal(rc, err, "results.nc", "changed after `bolt run`", "--overwrite")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_foreign_file_and_a_changed_summary_are_refused(runs, run, capsys):
    (run / "bridge.json").write_text((runs / "b2" / "summary.json").read_text())  # not written here
    rc, err = _cli(capsys, "report", str(run))
    _one_line_refusal(rc, err, "bridge.json", "foreign", f"bolt bridge {run}")
    (run / "bridge.json").unlink()
    s = json.loads((run / "summary.json").read_text())
    s["kl_se"] = 0.5 * s["kl_se"]
    (run / "summary.json").write_text(json.dumps(s))
    rc, err = _cli(capsys, "bounds", str(run))
    _one_line_refusal(rc, err, "summary.json", "changed")


def test_a_write_is_accepted_in_either_version_while_it_is_being_renamed(run):
    """Killed between recording the new hash and the rename: the old file (the `previous` entry) is accepted."""
    from bolt.io import atomic_write_text, record_write
    from bolt.rundir import verify_run_files

    old = (run / "bounds.json").read_bytes()
    record_write(run / "bounds.json", "0" * 64, 3, pending=True)
    verify_run_files(run, "report")  # the old file: still the recorded previous version
    atomic_write_text(run / "bounds.json", "[]\n")
    verify_run_files(run, "report")
    (run / "bounds.json").write_bytes(old)  # neither version now
    with pytest.raises(ResultsError, match="bounds.json changed"):
        verify_run_files(run, "report")


# ------------------------------------------------------------------ item 5: contents without a manifest


def _scale(f):
    def go(ds):
        ds["particles"] = ds["particles"] * f
        return ds
    return go


def _weight(i, v):
    """Weight i set to v, the next one changed so that the weights still sum to 1."""
    def go(ds):
        w = ds["weights"].values.copy()
        w[i + 1] += w[i] - v
        w[i] = v
        ds["weights"] = ("particle", w)
        return ds
    return go


def _nan_particle(ds):
    p = ds["particles"].values.copy()
    p[3, 0] = np.nan
    ds["particles"] = (("particle", "w_dim"), p)
    return ds


def _one_particle(ds):
    return ds.isel(particle=[50])


def _no_particles(ds):
    return ds.drop_vars("particles")


def _zero_weights(ds):
    ds["weights"] = ds["weights"] * 0.0
    return ds


CORRUPT = {"weight -1": (_weight(5, -1.0), "weights"), "one particle": (_one_particle, "particles"),
           "NaN particle": (_nan_particle, "particles"), "particles x 1e200": (_scale(1e200), "particles"),
           "no particles variable": (_no_particles, "'particles'"), "all weights 0": (_zero_weights, "weights")}


#: every case through bolt bounds; two through report and bridge in the default suite, all of them under -m slow
CORRUPT_CASES = [pytest.param(cmd, case, marks=() if cmd == "bounds" or case in ("NaN particle", "weight -1")
                              else pytest.mark.slow) for cmd in ("bounds", "report", "bridge") for case in CORRUPT]


@pytest.mark.parametrize("command, case", CORRUPT_CASES)
def test_corrupt_results_nc_is_one_line_naming_the_variable(run, capsys, command, case):
    fn, word = CORRUPT[case]
    _rewrite_results(run, fn)
    rc, err = _cli(capsys, command, str(run), *(["--quiet"] if command == "bridge" else []))
    _one_line_refusal(rc, err, "results.nc", word)
    assert not (run / "bridge.json").exists()


@pytest.mark.parametrize("key, value, word", [("kl_se", -1.0, "kl_se"), ("mean", [0.1, 0.2], "mean"),
                                              ("risk_se", -0.5, "risk_se")])
@pytest.mark.parametrize("command", ["bounds", "bridge"])
def test_a_wrong_summary_is_never_carried_into_bounds_or_bridge(run, capsys, key, value, word, command):
    (run / "manifest.json").unlink(missing_ok=True)  # written by an older bolt: the contents are what is checked
    s = json.loads((run / "summary.json").read_text())
    s[key] = value
    if key == "mean":
        s["covariance"] = [[1.0, 0.0], [0.0, 1.0]]
    (run / "summary.json").write_text(json.dumps(s))
    bounds_before = (run / "bounds.json").read_bytes()
    rc, err = _cli(capsys, command, str(run), *(["--quiet"] if command == "bridge" else []))
    _one_line_refusal(rc, err, "summary.json", word)
    assert (run / "bounds.json").read_bytes() == bounds_before and not (run / "bridge.json").exists()


def test_report_refuses_a_bridge_json_of_the_wrong_shape(run, capsys):
    (run / "manifest.json").unlink(missing_ok=True)
    (run / "bridge.json").write_text("[]")
    rc, err = _cli(capsys, "report", str(run))
    _one_line_refusal(rc, err, "bridge.json", f"bolt bridge {run}")


# ------------------------------------------------------------------ item 1: --overwrite


def test_overwrite_removes_every_file_the_old_run_held(run):
    """bridge.* and dynamics.* of the old run (and any other file its manifest lists) do not survive."""
    from bolt.io import atomic_write_bytes

    for name in ("bridge.json", "bridge.nc", "dynamics.json", "dynamics.nc", "extra.npz"):
        atomic_write_bytes(run / name, b"the old run's " + name.encode())
    (run / "notes.txt").write_text("the user's own file")
    run_config(_cfg(regularization__beta=2.0), run, quiet=True, overwrite=True)
    names = {p.name for p in run.iterdir()}
    assert names == {"config.toml", "results.nc", "summary.json", "bounds.json", "manifest.json", "notes.txt"}
    assert set(json.loads((run / "manifest.json").read_text())["files"]) == names - {"manifest.json", "notes.txt"}


# ------------------------------------------------------------------ item 2: one command's outputs together


@pytest.fixture(scope="module")
def bridged(runs):
    """The β = 1 run with a bridge (seed 0) and dynamics (seed 0) written, small sizes."""
    from bolt.dynamics.bridge import evaluate_run as bridge
    from bolt.dynamics.tracking import evaluate_run as dynamics
    from bolt.io import RunLock

    d = runs / "bridged"
    shutil.copytree(runs / "b1", d)
    with RunLock(d, "bridge"):
        bridge(d, **BRIDGE, seed=0)
    with RunLock(d, "dynamics"):
        dynamics(d, **DYNAMICS, overrides={**DYN_OVER, "seed": 0})
    return d


BRIDGE = dict(particles=64, steps=8, inner=8, quiet=True)
DYN_OVER = {"kind": "sgd", "particles": 8, "steps": 8, "repetitions": 2, "minibatch": 4}
DYNAMICS = dict(records=4, reference_samples=64, greedy_steps=4, quiet=True)


@pytest.mark.parametrize("command", ["bridge", "dynamics"])
def test_two_files_of_a_pair_from_two_invocations_are_refused(run, capsys, command):
    """The fast variant of the kill below: the .json from one invocation, the .nc from the next."""
    from bolt.io import RunLock, atomic_write_bytes

    for i, name in enumerate((f"{command}.json", f"{command}.nc")):
        with RunLock(run, command):
            atomic_write_bytes(run / name, b"seed %d" % i)
    rc, err = _cli(capsys, "report", str(run))
    _one_line_refusal(rc, err, f"{command}.json", "two different invocations", f"bolt {command} {run}")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["bridge", "dynamics"])
def test_a_command_killed_between_its_two_files_leaves_a_pair_that_is_refused(bridged, tmp_path, monkeypatch,
                                                                              capsys, command):
    """Seed 7's .nc beside seed 0's .json: bolt report refuses the mixed pair (today it reports both)."""
    from bolt.dynamics.bridge import evaluate_run as bridge
    from bolt.dynamics.tracking import evaluate_run as dynamics
    from bolt.io import RunLock

    run = tmp_path / "run"
    shutil.copytree(bridged, run)
    old_json = (run / f"{command}.json").read_bytes()
    _kill_at(monkeypatch, f"{command}:nc")
    with pytest.raises(Killed), RunLock(run, command):
        if command == "bridge":
            bridge(run, **BRIDGE, seed=7)
        else:
            dynamics(run, **DYNAMICS, overrides={**DYN_OVER, "seed": 7})
    assert (run / f"{command}.json").read_bytes() == old_json  # the pair is mixed on disk
    assert (run / f"{command}.nc").read_bytes() != (bridged / f"{command}.nc").read_bytes()
    rc, err = _cli(capsys, "report", str(run))
    _one_line_refusal(rc, err, f"{command}.json", "two different invocations", f"bolt {command} {run}")
    monkeypatch.undo()  # the recovery the message names: the command again writes a matching pair
    with RunLock(run, command):
        if command == "bridge":
            bridge(run, **BRIDGE, seed=7)
        else:
            dynamics(run, **DYNAMICS, overrides={**DYN_OVER, "seed": 7})
    from bolt.rundir import verify_run_files

    verify_run_files(run, "report")


# ------------------------------------------------------------------ item 3: finished = every promised output


def test_a_run_killed_after_its_summary_is_in_progress_and_resumes(runs, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _kill_at(monkeypatch, "summary")
    with pytest.raises(Killed):
        run_config(_cfg(), out, quiet=True)
    assert (out / "summary.json").is_file() and not (out / "bounds.json").exists()
    assert run_state(out) == "in progress"
    with pytest.raises(ResultsError, match="in-progress run.*--resume"):
        run_config(_cfg(), out, quiet=True)
    monkeypatch.undo()
    resumed = run_config(None, out, resume=True, quiet=True)
    assert (out / "bounds.json").read_bytes() == (runs / "b1" / "bounds.json").read_bytes()
    ref = json.loads((runs / "b1" / "summary.json").read_text())
    assert resumed["kl"] == ref["kl"] and run_state(out) == "finished"


# ------------------------------------------------------------------ item 11: corrupted checkpoints

TINY = {"problem": GRID["problem"], "output": {"report": False, "bounds": False},
        "solver": {"method": "picard-mala", "particles": 32, "chains": 2, "warmup": 10, "max_iterations": 3,
                   "min_iterations": 3, "tolerance": 1e-9, "logz_samples": 200, "final_blocks": 1}}


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """A Picard run killed after its first checkpoint."""
    import bolt._faults

    d = tmp_path_factory.mktemp("ck") / "run"
    mp = pytest.MonkeyPatch()
    mp.setattr(bolt._faults, "fault_point", lambda name: (_ for _ in ()).throw(Killed()) if name == "checkpoint:0"
               else None)
    try:
        with pytest.raises(Killed):
            run_config(resolve_config(TINY), d, quiet=True)
    finally:
        mp.undo()
    return d


def _nan_largest_field(z):
    key = max((k for k in z if k.startswith("field_")), key=lambda k: z[k].size)
    return {**z, key: z[key] * np.nan}


def _drop(prefix):
    return lambda z: {k: v for k, v in z.items() if not k.startswith(prefix)}


def _set(key, fn):
    return lambda z: {**z, key: fn(z[key])}


CK = {"no field_*": (_drop("field_"), "field_"), "no mcmc_*": (_drop("mcmc_"), "mcmc_"),
      "NaN field": (lambda z: _nan_largest_field(z), "field_"),
      "iteration -5": (_set("iteration", lambda v: np.asarray(-5)), "iteration")}


@pytest.mark.parametrize("case", list(CK))
def test_a_corrupt_checkpoint_is_refused_naming_the_array(case):
    """The fast variant of the resume below: a checkpoint of the Picard layout, checked against its config."""
    from bolt.commands import check_checkpoint
    from bolt.problem.model import Field

    cfg = resolve_config(TINY)
    n = cfg["solver"]["particles"]
    good = {"iteration": np.asarray(1), "samples": np.zeros((n, 1)), "mcmc_leaves": np.asarray(2),
            "mcmc_0": np.zeros(3), "mcmc_1": np.zeros((2, 1)), "trace_residual": np.zeros(2),
            **{f"field_{f}": np.ones((4, 1) if f == "particles" else 4) for f in Field._fields}}
    check_checkpoint(good, cfg, Path("ck.npz"))
    fn, word = CK[case]
    with pytest.raises(ResultsError, match=f"ck.npz: {word}"):
        check_checkpoint(fn(good), cfg, Path("ck.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CK))
def test_a_corrupt_checkpoint_is_one_line_on_resume(checkpointed, tmp_path, capsys, case):
    run = tmp_path / "run"
    shutil.copytree(checkpointed, run)
    fn, word = CK[case]
    with np.load(run / "checkpoint.npz") as z:
        data = fn({k: z[k] for k in z.files})
    np.savez(run / "checkpoint.npz", **data)
    rc, err = _cli(capsys, "run", "--resume", str(run), "--quiet")  # the manifest sees the change
    _one_line_refusal(rc, err, "checkpoint.npz", "changed")
    (run / "manifest.json").unlink(missing_ok=True)  # an older bolt's directory: the arrays themselves are checked
    rc, err = _cli(capsys, "run", "--resume", str(run), "--quiet")
    _one_line_refusal(rc, err, "checkpoint.npz", word)


# ------------------------------------------------------------------ item 4: concurrent sweeps


SWEEP = """
[sweep]
base = "base.toml"
steps = ["run"]
[sweep.grid]
"regularization.beta" = {betas}
"""


def _sweep_files(d, betas):
    import tomllib

    from bolt.config import dump_toml

    base = json.loads(json.dumps(GRID))
    base["output"] = {"report": False, "bounds": False}
    (d / "base.toml").write_text(dump_toml(base))
    f = d / f"sweep{len(betas)}.toml"
    f.write_text(SWEEP.format(betas=betas))
    tomllib.loads(f.read_text())
    return f


def _aggregates(out):
    return {f: (out / f).read_bytes() for f in ("sweep.toml", "sweep.json", "sweep.csv") if (out / f).exists()}


def test_a_second_sweep_that_checked_before_the_first_took_the_lock_is_refused(tmp_path, monkeypatch):
    """B checks --out (empty), then A runs start to end, then B goes on: B must refuse under the lock."""
    import bolt._faults
    from bolt.sweep.runner import run_sweep
    from bolt.sweep.spec import load_sweep

    a, b = load_sweep(_sweep_files(tmp_path, [1.0])), load_sweep(_sweep_files(tmp_path, [0.5, 2.0]))
    out = tmp_path / "out"

    def fault(name):
        if name == "sweep:checked":
            monkeypatch.setattr(bolt._faults, "fault_point", lambda name: None)
            run_sweep(a, out, workers=0, quiet=True)  # the first sweep, in B's window

    monkeypatch.setattr(bolt._faults, "fault_point", fault)
    with pytest.raises(ResultsError, match="holds a sweep"):
        run_sweep(b, out, workers=0, quiet=True)
    assert _aggregates(out)["sweep.toml"] == a.text.encode()
    assert sorted(p.name for p in (out / "points").iterdir()) == [p.name for p in a.points]


def test_resume_with_another_sweep_file_is_refused(tmp_path):
    from bolt.sweep.runner import run_sweep
    from bolt.sweep.spec import load_sweep

    a, b = load_sweep(_sweep_files(tmp_path, [1.0])), load_sweep(_sweep_files(tmp_path, [0.5, 2.0]))
    out = tmp_path / "out"
    run_sweep(a, out, workers=0, quiet=True)
    before = _aggregates(out)
    with pytest.raises(ResultsError, match=r"points this sweep file does not have \(beta"):
        run_sweep(b, out, workers=0, quiet=True, resume=True)
    assert _aggregates(out) == before


# ------------------------------------------------------------------ item 8: a full disk


def _can_mount_tmpfs() -> str | None:
    if not shutil.which("unshare"):
        return "no unshare"
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=40k none /mnt || "
                        "mount -t tmpfs -o size=40k none /tmp"], capture_output=True, timeout=30)
    return None if r.returncode == 0 else f"cannot mount a tmpfs here: {r.stderr.decode().strip()[:100]}"


NO_TMPFS = _can_mount_tmpfs()


def _in_small_fs(tmp_path, script: str, size="40k"):
    """Run ``script`` (sh) with a ``size`` tmpfs mounted at ``tmp_path/fs``, in a user and mount namespace."""
    fs = tmp_path / "fs"
    fs.mkdir()
    return subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size={size} none {fs} && {script}"],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ))


def test_a_failed_write_of_results_nc_keeps_the_old_file_and_the_manifest(run, monkeypatch):
    """The fast variant of the disk-full run below (the write error injected): one OSError naming the file,
    no temporary file, the previous results.nc and its manifest entry kept."""
    import errno

    import arviz as az

    import bolt.io
    from bolt.rundir import verify_run_files

    before, manifest = (run / "results.nc").read_bytes(), (run / "manifest.json").read_bytes()
    idata = az.from_netcdf(run / "results.nc")
    idata.load()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bolt.io.os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as info:
        bolt.io.save_results(run / "results.nc", idata)
    assert info.value.filename == str(run / "results.nc")
    monkeypatch.undo()
    assert (run / "results.nc").read_bytes() == before and (run / "manifest.json").read_bytes() == manifest
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    verify_run_files(run, "report")


@pytest.mark.slow
@pytest.mark.skipif(NO_TMPFS is not None, reason=str(NO_TMPFS))
@pytest.mark.parametrize("size", ["36k", "44k"])
def test_a_full_disk_while_writing_results_nc_is_one_line_and_the_run_resumes(tmp_path, size):
    """A 36 or 44 kB tmpfs: bolt run fails writing results.nc (before: 'Segmentation fault', exit 139, or h5py
    tracebacks); with 4 MB the same directory resumes to the finished run."""
    from bolt.config import dump_toml

    (tmp_path / "c.toml").write_text(dump_toml(_cfg()))
    bolt = f"{sys.executable} -m bolt.cli"
    d = tmp_path / "fs" / "run"
    r = _in_small_fs(tmp_path, f"{bolt} run {tmp_path / 'c.toml'} --out {d} --quiet; echo rc=$?; "
                     f"echo first: $(ls -A {d}); mount -o remount,size=4m {tmp_path / 'fs'} && "
                     f"{bolt} run --resume {d} --quiet; echo rc=$?; echo second: $(ls -A {d})", size=size)
    lines = r.stdout.splitlines()
    assert lines[0] == "rc=1" and "Segmentation" not in r.stderr and "Traceback" not in r.stderr, r
    assert r.stderr.count("bolt: error:") == 1 and "No space left on device" in r.stderr, r.stderr
    assert "results.nc" not in lines[1] and ".tmp" not in lines[1], lines  # nothing half-written
    assert lines[2] == "rc=0" and "results.nc" in lines[3] and "bounds.json" in lines[3], r


@pytest.mark.skipif(NO_TMPFS is not None, reason=str(NO_TMPFS))
def test_a_full_disk_while_taking_the_lock_leaves_no_lock(run, tmp_path):
    """The disk fills while the lock is taken: one line, and no empty .bolt.lock blocks the next command."""
    d = tmp_path / "fs" / "run"
    bolt = f"{sys.executable} -m bolt.cli"
    r = _in_small_fs(tmp_path, f"mkdir {d} && cp {run}/config.toml {run}/summary.json {d} && "
                     f"(dd if=/dev/zero of={tmp_path / 'fs' / 'fill'} bs=1k 2>/dev/null; true) && "
                     f"{bolt} bounds {d}; echo rc=$?; ls -a {d}", size="64k")
    assert "rc=2" in r.stdout and ".bolt.lock" not in r.stdout, r
    assert r.stderr.count("bolt: error:") == 1 and "No space left" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(NO_TMPFS is not None, reason=str(NO_TMPFS))
@pytest.mark.parametrize("size", ["92k", "100k"])
def test_a_full_disk_while_writing_bridge_nc_is_one_line_and_bridge_reruns(run, tmp_path, size):
    """The run's files fit, bridge.nc (~50 kB) does not (before: 'Segmentation fault', exit 139, and at 92k a
    .bolt.lock and a half-written .bridge.nc.*.tmp left behind); with 4 MB bolt bridge writes the pair."""
    d = tmp_path / "fs" / "run"
    bridge = f"{sys.executable} -m bolt.cli bridge {d} --particles 64 --steps 8 --inner 8 --quiet"
    r = _in_small_fs(tmp_path, f"cp -r {run} {d} && {bridge}; echo rc=$?; echo first: $(ls -A {d}); "
                     f"mount -o remount,size=4m {tmp_path / 'fs'} && {bridge}; echo rc=$?; echo second: $(ls -A {d})",
                     size=size)
    lines = r.stdout.splitlines()
    assert lines[0] == "rc=1" and "Segmentation" not in r.stderr and "Traceback" not in r.stderr, r
    assert r.stderr.count("bolt: error:") == 1 and "No space left on device" in r.stderr, r.stderr
    assert "bridge.nc" not in lines[1] and ".tmp" not in lines[1] and ".bolt.lock" not in lines[1], lines
    assert lines[2] == "rc=0" and "bridge.nc" in lines[3] and "bridge.json" in lines[3], r


PAIR_COMMANDS = {"bridge": "bridge {d} --particles 64 --steps 8 --inner 8 --quiet",
                 "dynamics": "dynamics {d} --kind sgd --particles 5 --steps 20 --records 4 --reference-samples 64 "
                             "--quiet"}


@pytest.mark.slow
@pytest.mark.skipif(NO_TMPFS is not None, reason=str(NO_TMPFS))
@pytest.mark.parametrize("command", sorted(PAIR_COMMANDS))
def test_a_full_disk_under_a_pair_command_is_one_line_and_it_reruns(run, tmp_path, command):
    """bolt bridge and bolt dynamics on a disk with 16 kB left after the run's files (a pad file is removed
    after the rest was filled): the .nc of the pair does not fit. One line, exit 1, nothing half-written and no
    lock left; once the fill is removed the same command writes its pair."""
    d, fs = tmp_path / "fs" / "run", tmp_path / "fs"
    cmd = f"{sys.executable} -m bolt.cli " + PAIR_COMMANDS[command].format(d=d)
    r = _in_small_fs(tmp_path, f"cp -r {run} {d} && dd if=/dev/zero of={fs}/pad bs=1k count=16 2>/dev/null && "
                     f"(dd if=/dev/zero of={fs}/fill bs=1k 2>/dev/null; true) && rm {fs}/pad && {cmd}; "
                     f"echo rc=$?; echo first: $(ls -A {d}); rm {fs}/fill && {cmd}; echo rc=$?; "
                     f"echo second: $(ls -A {d})", size="4m")
    lines = r.stdout.splitlines()
    assert lines[0] == "rc=1" and "Segmentation" not in r.stderr and "Traceback" not in r.stderr, r
    assert r.stderr.count("bolt: error:") == 1 and "No space left on device" in r.stderr, r.stderr
    assert f"{command}.nc" not in lines[1] and ".tmp" not in lines[1] and ".bolt.lock" not in lines[1], lines
    assert lines[2] == "rc=0" and f"{command}.nc" in lines[3] and f"{command}.json" in lines[3], r
