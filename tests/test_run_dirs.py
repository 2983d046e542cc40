"""Run directories: no silent overwrite, one writer at a time, failing configs touch nothing, clear errors."""

import os
import socket
import subprocess
import sys

import pytest

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
report = false
bounds = false
"""


def _bolt(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bolt.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    d = tmp_path_factory.mktemp("dirs")
    (d / "c.toml").write_text(GRID)
    r = _bolt("run", str(d / "c.toml"), "--out", str(d / "run"), "--quiet")
    assert r.returncode == 0, r.stderr
    return d


def _snapshot(run):
    return {p.name: p.read_bytes() for p in run.iterdir()}


def test_a_finished_run_is_never_silently_overwritten(finished):
    run, before = finished / "run", _snapshot(finished / "run")
    r = _bolt("run", str(finished / "c.toml"), "--out", str(run), "--quiet")
    assert r.returncode == 2 and "finished run" in r.stderr and "--resume" in r.stderr and "--overwrite" in r.stderr
    assert "Traceback" not in r.stderr and _snapshot(run) == before
    r = _bolt("run", "--resume", str(run))
    assert r.returncode == 2 and "already complete" in r.stderr


def test_a_failing_config_never_touches_an_existing_run(finished):
    run, before = finished / "run", _snapshot(finished / "run")
    bad = finished / "bad.toml"
    bad.write_text('[problem]\ninputs = "data"\ndata = "missing.npz"\n[problem.target]\nkind = "data"\n')
    r = _bolt("run", str(bad), "--out", str(run), "--overwrite", "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert _snapshot(run) == before


def test_overwrite_replaces_the_run(finished, tmp_path):
    run = tmp_path / "run"
    assert _bolt("run", str(finished / "c.toml"), "--out", str(run), "--quiet").returncode == 0
    (run / "stale.txt").write_text("kept: not a bolt file")
    (run / "bounds.json").write_text("[]")  # from an older run: must not survive the overwrite
    r = _bolt("run", str(finished / "c.toml"), "--out", str(run), "--overwrite", "--quiet")
    assert r.returncode == 0, r.stderr
    assert not (run / "bounds.json").exists() and (run / "summary.json").exists()


def test_default_output_directory_is_numbered(finished, tmp_path):
    for _ in range(2):
        r = _bolt("run", str(finished / "c.toml"), cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "bolt-run" / "summary.json").exists() and (tmp_path / "bolt-run-2" / "summary.json").exists()
    assert "bolt-run-2" in r.stderr


@pytest.mark.parametrize("where", ["file", "under-file", "empty", "blank", "dev-null"])
def test_bad_output_paths_get_one_line_errors(finished, tmp_path, where):
    f = tmp_path / "afile"
    f.write_text("x")
    out = {"file": str(f), "under-file": str(f / "sub"), "empty": "", "blank": " ", "dev-null": "/dev/null"}[where]
    r = _bolt("run", str(finished / "c.toml"), "--out", out, "--quiet")
    assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr


def test_resume_refuses_another_config_or_out(finished, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(GRID.replace("grid_points = 101", "grid_points = 201"))
    r = _bolt("run", str(other), "--resume", str(finished / "run"))
    assert r.returncode == 2 and "differs" in r.stderr and "solver.grid_points 101 -> 201" in r.stderr
    r = _bolt("run", "--resume", str(finished / "run"), "--out", str(tmp_path / "elsewhere"))
    assert r.returncode == 2 and "--out" in r.stderr and not (tmp_path / "elsewhere").exists()
    r = _bolt("run", "--resume", str(finished / "run"), "--overwrite")
    assert r.returncode == 2 and "--overwrite" in r.stderr


def test_one_writer_per_run_directory(finished):
    run = finished / "run"
    lock = run / ".bolt.lock"
    lock.write_text(f"{os.getpid()} {socket.gethostname()} run\n")  # a live process holds it
    try:
        for args in (("bounds", str(run)), ("report", str(run))):
            r = _bolt(*args)
            assert r.returncode == 2 and "another bolt process" in r.stderr and str(os.getpid()) in r.stderr, args
    finally:
        lock.unlink()
    # a stale lock (its process is gone) is replaced, and released again at the end
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{dead.pid} {socket.gethostname()} run\n")
    r = _bolt("bounds", str(run))
    assert r.returncode == 0, r.stderr
    assert not lock.exists()
