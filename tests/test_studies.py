"""Studies and benchmarks run in their smoke modes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_lazy_training_study_smoke(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "studies/lazy_training/run.py"), "--smoke", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "results.json").read_text())
    assert len(rows) == 4 and (tmp_path / "lazy_training.png").exists()
    by = {(r["beta"], r["N"]): r for r in rows}
    # larger beta moves µ* further from γ_τ: the weights move more (difference well outside the errors)
    a, b = by[(0.5, 200)], by[(1.0, 200)]
    assert b["mean_displacement"] - a["mean_displacement"] > 3 * np.hypot(a["mean_displacement_se"],
                                                                          b["mean_displacement_se"])
