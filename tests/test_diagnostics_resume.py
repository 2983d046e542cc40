"""results.nc, diagnostics, the HTML report, atomic writes and resume after an interruption."""

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import arviz as az
import numpy as np
import pytest

import bolt.io as bio
from bolt.commands import run_config
from bolt.config import resolve_config
from bolt.diagnostics import diagnose
from bolt.errors import ResultsError
from bolt.testing import ar1_chains

SMALL = {
    "problem": {"dim": 2, "target": {"kind": "teacher", "weights": [[1.5, 0.0], [0.0, 1.0]],
                                     "coefficients": [1.0, -0.5]}},
    "solver": {"method": "picard-mala", "particles": 400, "chains": 4, "warmup": 100, "max_iterations": 4,
               "min_iterations": 4, "tolerance": 1e-9, "logz_samples": 4000},
}


def _cfg(**solver):
    raw = json.loads(json.dumps(SMALL))
    raw["solver"].update(solver)
    return resolve_config(raw)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    summary = run_config(_cfg(), out, quiet=True)
    return out, summary


def test_results_roundtrip_through_arviz(full_run):
    out, _ = full_run
    idata = az.from_netcdf(out / "results.nc")
    assert {"posterior", "sample_stats", "particles", "fixed_point"} <= set(idata.groups())
    post = idata.posterior
    assert post["w"].dims == ("chain", "draw", "w_dim") and post.sizes["chain"] == 4
    assert post["psi"].dims == ("chain", "draw") and post["w_norm_sq"].dims == ("chain", "draw")
    for name in ("lp", "diverging", "step_size", "acceptance_rate"):
        assert name in idata.sample_stats, name
    assert idata.fixed_point["residual"].dims == ("iteration",) and idata.fixed_point.sizes["iteration"] == 4
    # the final draws: `final_blocks` blocks of `particles` draws of the last Γ(µ_K), in 4 chains
    from bolt.config import DEFAULT_CONFIG

    blocks = DEFAULT_CONFIG["solver"]["final_blocks"]
    assert idata.particles["particles"].shape == (400 * blocks, 2)
    assert post.sizes["draw"] == 100 * blocks
    np.testing.assert_allclose(idata.particles["weights"].sum(), 1.0)


def test_report_has_every_section_and_images_decode(full_run):
    from PIL import Image

    out, _ = full_run
    html = (out / "report.html").read_text()
    for sec in ("problem", "convergence", "marginals", "function", "diagnostics", "bounds", "provenance"):
        assert f"id='{sec}'" in html, sec
    assert "Pair plot" in html
    summary = json.loads((out / "summary.json").read_text())  # both stopping tests are reported
    assert f"drift z = {summary['drift_z']:+.2f}" in html and f"(p = {summary['residual_p_value']:.2f})" in html
    imgs = re.findall(r"base64,([A-Za-z0-9+/=]+)", html)
    assert len(imgs) >= 6  # convergence, marginals, pairs, function, trace, rank
    for b in imgs:
        Image.open(io.BytesIO(base64.b64decode(b))).verify()
    assert "http://" not in html and "https://" not in html  # self-contained
    bounds = json.loads((out / "bounds.json").read_text())
    assert {"name", "lhs", "rhs", "constant", "holds", "lhs_se", "rhs_se", "estimator"} <= set(bounds[0])


def test_summary_and_table_report_the_final_drift_check(full_run, capsys):
    from bolt.commands import print_summary

    out, summary = full_run  # picard-mala with the default 5 final blocks: the final check ran
    assert np.isfinite(summary["final_drift_z"]) and 0.0 <= summary["final_drift_p_value"] <= 1.0
    print_summary(summary, out)
    row = f"{summary['final_drift_z']:+.2f} (p = {summary['final_drift_p_value']:.2f}; all final draws)"
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "final drift (z)" in ln]
    assert len(lines) == 1 and row in lines[0], lines


def test_report_escapes_config_text(tmp_path, full_run):
    out, _ = full_run
    import shutil

    run = tmp_path / "run"
    shutil.copytree(out, run)
    (run / "manifest.json").unlink(missing_ok=True)  # as written by an older bolt: the contents are checked
    s = json.loads((run / "summary.json").read_text())
    s["problem"]["target"] = "<script>alert(1)</script>"
    (run / "summary.json").write_text(json.dumps(s))
    from bolt.diagnostics.report import build_report

    html = build_report(run)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def _run_interrupted(monkeypatch, cfg, out, after: int):
    """Run, raising KeyboardInterrupt right after the ``after``-th checkpoint is written."""
    real = bio.save_checkpoint
    calls = []

    def interrupting(path, data):
        real(path, data)
        calls.append(1)
        if len(calls) == after:
            raise KeyboardInterrupt

    monkeypatch.setattr(bio, "save_checkpoint", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run_config(cfg, out, quiet=True)
    monkeypatch.setattr(bio, "save_checkpoint", real)


def test_resume_after_interruption_equals_uninterrupted(tmp_path, monkeypatch, full_run):
    _, ref = full_run
    out = tmp_path / "r"
    cfg = _cfg()
    cfg["output"].update(report=False, bounds=False)  # the estimates do not depend on them
    _run_interrupted(monkeypatch, cfg, out, after=2)
    assert (out / "checkpoint.npz").exists() and not (out / "summary.json").exists()
    assert int(np.load(out / "checkpoint.npz")["iteration"]) == 1
    resumed = run_config(None, out, resume=True, quiet=True)
    for key in ("risk", "kl", "log_z", "free_energy", "residual", "iterations"):
        np.testing.assert_allclose(resumed[key], ref[key], rtol=1e-9, err_msg=key)
    np.testing.assert_allclose(resumed["mean"], ref["mean"], rtol=1e-9)


def test_mfld_resume_equals_uninterrupted(tmp_path, monkeypatch):
    cfg = _cfg(method="mfld", particles=300, horizon=1.0)
    cfg["output"].update(report=False, bounds=False)
    ref = run_config(cfg, tmp_path / "a", quiet=True)
    _run_interrupted(monkeypatch, cfg, tmp_path / "b", after=10)
    resumed = run_config(None, tmp_path / "b", resume=True, quiet=True)
    np.testing.assert_allclose(resumed["mean"], ref["mean"], rtol=1e-10)
    np.testing.assert_allclose(resumed["free_energy"], ref["free_energy"], rtol=1e-10)


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    bio.write_json(target, {"a": 1})

    def boom(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        bio.write_json(target, {"a": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_keep_checkpoint_and_exit_cleanly(tmp_path, sig):
    cfg = tmp_path / "c.toml"
    cfg.write_text("""
[problem]
dim = 2
[problem.target]
kind = "teacher"
weights = [[1.5, 0.0], [0.0, 1.0]]
[solver]
method = "mfld"
particles = 300
horizon = 400.0
tolerance = 0.999  # (never met: the run goes on until the signal)
[output]
report = false
bounds = false
""")
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "bolt.cli", "run", str(cfg), "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "checkpoint.npz").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (out / "checkpoint.npz").exists(), proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert (out / "checkpoint.npz").exists() and not (out / "summary.json").exists()
    bio.load_checkpoint(out / "checkpoint.npz")  # readable, not half-written


def test_corrupt_or_missing_results_get_clear_errors(tmp_path):
    with pytest.raises(ResultsError, match="no results file"):
        bio.load_results(tmp_path / "results.nc")
    (tmp_path / "results.nc").write_bytes(b"garbage")
    with pytest.raises(ResultsError, match="not a readable NetCDF"):
        bio.load_results(tmp_path / "results.nc")
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ResultsError, match="corrupt"):
        bio.load_summary(tmp_path)
    (tmp_path / "checkpoint.npz").write_bytes(b"garbage")
    with pytest.raises(ResultsError, match="corrupt"):
        bio.load_checkpoint(tmp_path / "checkpoint.npz")
    r = subprocess.run([sys.executable, "-m", "bolt.cli", "report", str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_diagnostics_flag_a_stuck_chain():
    rng = np.random.default_rng(0)
    good = rng.normal(size=(4, 500, 2))
    idata = az.from_dict(posterior={"w": good}, dims={"w": ["w_dim"]})
    assert not any("R-hat" in w for w in diagnose(idata)["warnings"])
    bad = good.copy()
    bad[0] = 1.5 + 0.01 * rng.normal(size=(500, 2))  # one chain stuck away from the others
    d = diagnose(az.from_dict(posterior={"w": bad}, dims={"w": ["w_dim"]}))
    rhats = [r["r_hat"] for r in d["table"]]
    assert max(rhats) > 1.01 and any("R-hat" in w for w in d["warnings"])


def test_diagnostics_warn_below_100_ess_per_chain_and_above_rhat_1_01():
    """The thresholds of Vehtari et al. (2021): bulk ESS under 100 per chain (four AR(1) chains with an ESS
    between 100 and 400 are flagged) and R-hat over 1.01 (four iid chains, one shifted by half an sd: R-hat
    ≈ 1.03, flagged)."""
    x = ar1_chains(np.random.default_rng(0), 0.9, 4, 1000)
    assert 100 < float(az.ess(x)) < 400
    warns = diagnose(az.from_dict(posterior={"w": x[:, :, None]}, dims={"w": ["w_dim"]}))["warnings"]
    assert any("ESS" in w for w in warns), warns
    x = ar1_chains(np.random.default_rng(1), 0.0, 4, 4000, shift=[0.5, 0.0, 0.0, 0.0])
    assert 1.01 < float(az.rhat(x)) < 1.1
    warns = diagnose(az.from_dict(posterior={"w": x[:, :, None]}, dims={"w": ["w_dim"]}))["warnings"]
    assert any("R-hat" in w for w in warns), warns


def test_low_tail_or_low_bulk_ess_alone_is_flagged():
    """Module docstring (Vehtari et al. 2021): bulk *or* tail ESS below 100 per chain is a warning, so
    either one alone is flagged; R-hat above 1.01 is flagged. Rows built by hand: exact thresholds."""
    from bolt.diagnostics.summary import flag_warnings

    def warns(**row):
        r = {"variable": "w", "r_hat": 1.0, "ess_bulk": 1000.0, "ess_tail": 1000.0, **row}
        return flag_warnings({"table": [r], "chains": 4, "divergences": 0, "bfmi": None})

    assert warns() == []
    assert any("ESS" in w for w in warns(ess_tail=399.0)) and any("ESS" in w for w in warns(ess_bulk=399.0))
    assert warns(ess_tail=400.0, ess_bulk=400.0) == []
    assert any("R-hat" in w for w in warns(r_hat=1.011)) and warns(r_hat=1.01) == []
