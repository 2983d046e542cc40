"""Fault injection (issue 12): signals at many points of a short run, then ``--resume``; concurrent writers.

A killed run is a ``bolt run`` subprocess with ``BOLT_FAULT=POINT:SIGNAL`` (:mod:`bolt._faults`): it
sends itself SIGINT, SIGTERM or SIGKILL at POINT. Resuming must give the numbers of an uninterrupted
run exactly (iteration k uses ``fold_in(key, k)``; the final blocks, which are not checkpointed, are
drawn again from the last checkpoint's sampler state). The default suite runs the SIGKILL between the
last checkpoint and the summary and the concurrent-writer case; the other points are ``slow``.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from bolt.commands import run_config
from bolt.config import load_config

TINY = """
[problem]
dim = 1
[problem.target]
kind = "teacher"
weights = [[1.5]]
coefficients = [1.0]
[solver]
method = "picard-mala"
particles = 64
chains = 2
warmup = 30
max_iterations = 3
min_iterations = 3
tolerance = 1e-9
logz_samples = 1000
final_blocks = 3
[output]
report = false
bounds = false
"""

KEYS = ("risk", "risk_se", "kl", "kl_se", "log_z", "free_energy", "residual", "w2_squared_to_prior", "iterations")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    (d / "c.toml").write_text(TINY)
    summary = run_config(load_config(d / "c.toml"), d / "ref", quiet=True)
    return d, summary


def _killed_run(cfg, out, point, sig):
    env = dict(os.environ, BOLT_FAULT=f"{point}:{sig}")
    r = subprocess.run([sys.executable, "-m", "bolt.cli", "run", str(cfg), "--out", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=600, env=env)
    if sig == "KILL":
        assert r.returncode == -signal.SIGKILL, r.stderr
    else:
        assert r.returncode == 130 and "interrupted" in r.stderr and "Traceback" not in r.stderr, r.stderr
    return r


def _same(a, b):
    for k in KEYS:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-9, err_msg=k)
    np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-9)
    assert a["converged"] == b["converged"] and a["config_sha256"] == b["config_sha256"]


def _fault_and_resume(reference, tmp_path, point, sig):
    d, ref = reference
    out = tmp_path / "run"
    _killed_run(d / "c.toml", out, point, sig)
    assert not (out / "summary.json").exists() or (out / "checkpoint.npz").exists()
    (out / ".checkpoint.npz.k1ll3d.tmp").write_bytes(b"a killed atomic write")  # litter of a SIGKILL mid-write
    resumed = run_config(None, out, resume=True, quiet=True)
    _same(resumed, ref)
    assert json.loads((out / "summary.json").read_text())["iterations"] == ref["iterations"]
    assert not (out / "checkpoint.npz").exists() and not list(out.glob(".*.tmp")) and not (out / ".bolt.lock").exists()


def test_sigkill_between_last_checkpoint_and_summary_resumes_to_the_same_answer(reference, tmp_path):
    _fault_and_resume(reference, tmp_path, "solved", "KILL")


@pytest.mark.slow
@pytest.mark.parametrize("point, sig", [
    ("started", "KILL"), ("checkpoint:0", "INT"), ("checkpoint:1", "TERM"), ("checkpoint:1", "KILL"),
    ("checkpoint:2", "INT"), ("final-block:1", "KILL"), ("final-block:2", "INT"), ("solved", "INT"),
    ("solved", "TERM"), ("results", "KILL"), ("summary", "TERM"), ("summary", "KILL"), ("outputs", "KILL"),
])
def test_signal_at_any_point_then_resume_gives_the_same_answer(reference, tmp_path, point, sig):
    _fault_and_resume(reference, tmp_path, point, sig)


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
bounds = true
"""


def test_two_concurrent_writers_never_mix_files(tmp_path):
    (tmp_path / "a.toml").write_text(GRID)
    (tmp_path / "b.toml").write_text(GRID.replace("[solver]", "[regularization]\nbeta = 2.0\n[solver]"))
    out = tmp_path / "run"
    procs = [subprocess.Popen([sys.executable, "-m", "bolt.cli", "run", str(tmp_path / f"{x}.toml"), "--out",
                               str(out), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for x in "ab"]
    res = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in res)
    assert codes == [0, 2], res
    err = next(e for rc, e in res if rc == 2)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "another bolt process" in err or "holds a" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config_sha256"] in (out / "config.toml").read_text()  # config and results of one run
    from bolt.rundir import verify_run_config

    verify_run_config(out, "test")
    assert not (out / ".bolt.lock").exists()
