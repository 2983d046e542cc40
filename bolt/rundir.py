"""Run-directory integrity: the config hash, an edited ``config.toml``, and the shape of ``summary.json``.

``bolt run`` writes ``config.toml`` with a header comment holding the SHA-256 of the resolved config
(and of the data file, for ``inputs = "data"``); ``summary.json`` and ``checkpoint.npz`` carry the
same hashes and the config itself. :func:`verify_run_config` — called by ``--resume``, ``bolt bounds``,
``bolt report`` and ``bolt bridge`` before any work — recomputes them and refuses a run directory
whose ``config.toml`` (or data file) no longer matches, naming the keys that changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from pathlib import Path

from bolt.errors import ResultsError

__all__ = ["config_digest", "data_digest", "fingerprint", "config_text", "verify_run_config", "config_changes",
           "check_summary", "check_bounds", "check_results_finite", "MAX_ABS_RESULT", "verify_run_files",
           "MANIFEST_NAME", "file_sha256", "read_manifest", "rewrite_hint", "safe_name",
           "check_measure", "check_summary_fits", "READS", "PAIRS"]

_HEADER = re.compile(r"^#\s*bolt:\s*(config|data)\s+sha256\s+([0-9a-f]{64})\s*$", re.M)

#: Largest magnitude accepted for a result written to summary.json / bounds.json: beyond it a value is
#: an overflow artefact (e.g. (τ/β)·round-off at a tiny β), not an estimate.
MAX_ABS_RESULT = 1e100


def config_digest(cfg: dict) -> str:
    """SHA-256 of a (resolved) config: canonical JSON, sorted keys."""
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def data_digest(cfg: dict) -> str | None:
    """SHA-256 of the data file's content when the problem is defined by one (``inputs = "data"``), else None."""
    pc = cfg.get("problem", {})
    if pc.get("inputs") != "data" or not pc.get("data"):
        return None
    h = hashlib.sha256()
    try:
        with open(pc["data"], "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None  # a missing file is reported by the data loader
    return h.hexdigest()


def fingerprint(cfg: dict) -> dict:
    """``{"config_sha256": ..., "data_sha256": ...}`` (the data hash only for a data problem)."""
    out = {"config_sha256": config_digest(cfg)}
    d = data_digest(cfg)
    if d is not None:
        out["data_sha256"] = d
    return out


def config_text(cfg: dict, fp: dict | None = None) -> str:
    """``config.toml`` of a run directory: the hash header, then the resolved config."""
    from bolt.config import dump_toml

    fp = fingerprint(cfg) if fp is None else fp
    head = ["# bolt run config: edit it and --resume, bolt bounds, bolt report refuse the directory",
            f"# bolt: config sha256 {fp['config_sha256']}"]
    if fp.get("data_sha256"):
        head.append(f"# bolt: data sha256 {fp['data_sha256']}")
    return "\n".join(head) + "\n" + dump_toml(cfg)


def _flat(d, prefix="") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _short(v) -> str:
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def config_changes(old: dict, new: dict, limit: int = 4) -> str:
    """``"regularization.beta 1.5 -> 3.0, solver.particles 200 -> 400"`` for two configs (flattened)."""
    a, b = _flat(old), _flat(new)
    diffs = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<unset>") != b.get(k, "<unset>"):
            diffs.append(f"{k} {_short(a.get(k, '<unset>'))} -> {_short(b.get(k, '<unset>'))}")
    if len(diffs) > limit:
        diffs = diffs[:limit] + [f"and {len(diffs) - limit} more"]
    return ", ".join(diffs)


def _read_raw(path: Path) -> tuple[dict, str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        return tomllib.loads(text), text
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ResultsError(f"config: {path} is not valid TOML: {exc}") from None


def _recorded(run_dir: Path, text: str) -> list[tuple[str, dict, dict | None]]:
    """Every recorded fingerprint of a run directory: (where, fingerprint, the config it was taken of)."""
    found = []
    head = {f"{m.group(1)}_sha256": m.group(2) for m in _HEADER.finditer(text)}
    if "config_sha256" in head:
        found.append(("config.toml header", head, None))
    s = run_dir / "summary.json"
    if s.is_file():
        try:
            summary = json.loads(s.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            summary = None  # reported by load_summary
        if isinstance(summary, dict) and isinstance(summary.get("config_sha256"), str):
            cfg = summary.get("config") if isinstance(summary.get("config"), dict) else None
            found.append(("summary.json", {k: summary[k] for k in ("config_sha256", "data_sha256")
                                           if isinstance(summary.get(k), str)}, cfg))
    ck = run_dir / "checkpoint.npz"
    if ck.is_file():
        import numpy as np

        try:
            with np.load(ck, allow_pickle=False) as z:
                if "config_sha256" in z.files:
                    fp = {k: str(z[k]) for k in ("config_sha256", "data_sha256") if k in z.files}
                    cfg = json.loads(str(z["config_json"])) if "config_json" in z.files else None
                    found.append(("checkpoint.npz", fp, cfg))
        except Exception:  # noqa: BLE001 — a corrupt checkpoint is reported by load_checkpoint
            pass
    return found


def verify_run_config(run_dir, command: str, reads=None) -> dict:
    """Load a run directory's ``config.toml``, refusing one edited since the run wrote it, then check the
    files ``command`` reads against the manifest (:func:`verify_run_files`).

    Returns the resolved config. Raises :class:`ResultsError` naming the changed keys (when a copy of
    the original config is recorded), or the data file whose content changed.
    """
    from bolt.config import load_config

    run_dir = Path(run_dir)
    path = run_dir / "config.toml"
    if not path.is_file():
        raise ResultsError(f"{command}: {run_dir} has no config.toml (not a bolt run directory)")
    raw, text = _read_raw(path)
    actual = config_digest(raw)
    records = _recorded(run_dir, text)
    for where, fp, _ in records:
        if fp.get("config_sha256") != actual:
            original = next((c for _, f, c in records if c is not None and f.get("config_sha256") != actual), None)
            what = f" (changed: {config_changes(original, raw)})" if original is not None else ""
            raise ResultsError(f"{command}: {path} was edited after the run wrote it{what}; the hash recorded in "
                               f"{where} no longer matches. Restore it, or start a new run: bolt run CONFIG --out NEW")
    cfg = load_config(path)
    now = data_digest(cfg)
    for where, fp, _ in records:
        if fp.get("data_sha256") and now is not None and fp["data_sha256"] != now:
            raise ResultsError(f"{command}: the data file {cfg['problem']['data']} changed after the run "
                               f"(its sha256 no longer matches {where}); restore it, or start a new run")
    verify_run_files(run_dir, command, reads)
    return cfg


# ----------------------------------------------------------------------------- the manifest

MANIFEST_NAME = "manifest.json"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(run_dir: str | Path) -> dict | None:
    """``RUN_DIR/manifest.json`` (``{"version": 1, "files": {name: {sha256, size, command, session}}}``), or
    None when the directory has none; a corrupt one is a one-line error."""
    path = Path(run_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"results: {path} is corrupt ({exc}); remove it (the files are then checked by "
                           f"content only) or rewrite the run: bolt run CONFIG --out {run_dir} --overwrite") from None
    ok = isinstance(m, dict) and isinstance(m.get("files"), dict) and all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) for e in m["files"].values())
    if not ok:
        raise ResultsError(f"results: {path} is not a bolt manifest (files: name -> sha256); remove it or rewrite "
                           f"the run: bolt run CONFIG --out {run_dir} --overwrite")
    return m



_RUN = ("config.toml", "summary.json", "results.nc")
#: the files each command reads (and so checks against the manifest) before it works
READS = {"resume": ("config.toml", "checkpoint.npz"), "bounds": _RUN, "bridge": _RUN, "dynamics": _RUN,
         "report": (*_RUN, "bounds.json", "bridge.json", "bridge.nc", "dynamics.json", "dynamics.nc")}
#: files written together by one command: both must come from the same invocation (session)
PAIRS = (("summary.json", "results.nc"), ("bridge.json", "bridge.nc"), ("dynamics.json", "dynamics.nc"))
_REWRITER = {"bounds.json": "bolt bounds {d}", "bridge.json": "bolt bridge {d}", "bridge.nc": "bolt bridge {d}",
             "dynamics.json": "bolt dynamics {d}", "dynamics.nc": "bolt dynamics {d}", "report.html": "bolt report {d}"}


def safe_name(name) -> bool:
    """A plain file name inside the directory (a manifest entry is never a path elsewhere)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name


def rewrite_hint(name: str, run_dir) -> str:
    """The command that writes ``name`` afresh in ``run_dir``."""
    return _REWRITER.get(name, "bolt run CONFIG --out {d} --overwrite").format(d=run_dir)


def verify_run_files(run_dir, command: str, reads=None) -> None:
    """Refuse a file ``command`` reads that differs from what the manifest recorded (changed, or copied in from
    another run), one not in the manifest (foreign), or a pair of files from two invocations (mixed).

    ``reads`` defaults to :data:`READS` of the command (nothing for an unknown one). A directory without a
    manifest (written by an older bolt) is checked by content only, where the files are loaded.
    """
    run_dir = Path(run_dir)
    m = read_manifest(run_dir)
    reads = READS.get(command, ()) if reads is None else tuple(reads)
    if m is None or not reads:
        return
    files = m["files"]
    for name in reads:
        p = run_dir / name
        if not p.is_file():
            continue
        e = files.get(name)
        if e is None:
            raise ResultsError(f"{command}: {p} is not a file bolt wrote in this directory (no entry in "
                               f"{MANIFEST_NAME}): a foreign file; remove it, or write it afresh: "
                               f"{rewrite_hint(name, run_dir)}")
        digest, prev = file_sha256(p), e.get("previous") if isinstance(e.get("previous"), dict) else {}
        if digest != e["sha256"] and digest == prev.get("sha256"):  # killed between the record and the rename
            files[name] = e = prev
        if digest != e["sha256"]:
            raise ResultsError(f"{command}: {p} changed after `bolt {e.get('command', '?')}` wrote it (its sha256 "
                               f"no longer matches {MANIFEST_NAME}; copied from another run?); restore it, or write "
                               f"it afresh: {rewrite_hint(name, run_dir)}")
    for a, b in PAIRS:
        ea, eb = files.get(a), files.get(b)
        if a in reads and b in reads and ea and eb and (run_dir / a).is_file() and (run_dir / b).is_file() \
                and ea.get("session") != eb.get("session"):
            raise ResultsError(f"{command}: {run_dir / a} and {b} were written by two different invocations "
                               f"(`bolt {ea.get('command', '?')}` and `bolt {eb.get('command', '?')}`; one was "
                               f"interrupted between them): a mixed pair; write both afresh: "
                               f"{rewrite_hint(b, run_dir)}")


# ----------------------------------------------------------------------------- results


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and abs(x) <= MAX_ABS_RESULT


def _walk(x, name):
    """(name, value) of every number in a nested list."""
    if isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from _walk(v, f"{name}[{i}]")
    else:
        yield name, x


#: summary.json keys that are results: finite numbers (or nested lists of them)
RESULT_KEYS = ("risk", "risk_se", "kl", "kl_se", "log_z", "log_z_se", "free_energy", "free_energy_se",
               "expected_psi", "mean", "covariance", "w2_squared_to_prior", "w2_squared_to_prior_se", "residual")


def check_results_finite(summary: dict, what: str = "run") -> None:
    """Refuse to write a summary whose results are NaN, infinite or absurdly large (naming the quantity)."""
    import numpy as np

    for key in RESULT_KEYS:
        if key not in summary:
            continue
        v = summary[key]
        v = np.asarray(v, dtype=np.float64).tolist() if not isinstance(v, (list, tuple, str)) else v
        for name, x in _walk(v, key):
            try:
                xf = float(x)
            except (TypeError, ValueError):
                xf = math.nan
            if not (math.isfinite(xf) and abs(xf) <= MAX_ABS_RESULT):
                raise ResultsError(
                    f"{what}: the estimate of {name} is {xf:.4g}, not a finite result (|x| <= {MAX_ABS_RESULT:g}); "
                    f"nothing written. The estimators over- or underflowed: check regularization.beta/tau "
                    f"(docs/config.md, 'Valid ranges') and the data")
    for key in ("constants",):
        for k, x in (summary.get(key) or {}).items():
            if isinstance(x, (int, float)) and not isinstance(x, bool) and not (
                    math.isfinite(x) and abs(x) <= MAX_ABS_RESULT):
                raise ResultsError(f"{what}: the problem constant {k} is {x:.4g}, not finite; nothing written. "
                                   f"Check the target weights and data values (they overflow float64)")


def _need(cond: bool, path: Path, key: str, want: str, got) -> None:
    if not cond:
        g = repr(got)
        g = g if len(g) <= 40 else g[:37] + "..."
        raise ResultsError(f"results: {path}: {key} must be {want}, got {g}")


def check_summary(summary, path: Path) -> dict:
    """Check the shape of a loaded ``summary.json`` (one-line error naming the file and key)."""
    _need(isinstance(summary, dict), path, "the top level", "a JSON object", type(summary).__name__)
    for key in ("solver",):
        _need(isinstance(summary.get(key), str), path, key, "a string", summary.get(key))
    _need(isinstance(summary.get("converged"), bool), path, "converged", "true or false", summary.get("converged"))
    it = summary.get("iterations")
    _need(isinstance(it, int) and not isinstance(it, bool) and it >= 0, path, "iterations",
          "a non-negative integer", it)
    for key in ("risk", "kl", "log_z", "free_energy", "residual", "w2_squared_to_prior"):
        _need(_finite(summary.get(key)), path, key, "a finite number", summary.get(key))
    for key in ("risk_se", "kl_se", "log_z_se", "free_energy_se", "w2_squared_to_prior_se",
                "residual_p_value", "drift_p_value", "final_drift_p_value", "ess"):
        v = summary.get(key)
        _need(v is None or (_finite(v) and v >= 0), path, key, "a finite number >= 0 or null", v)
    for key in ("drift_z", "final_drift_z", "residual_floor"):
        v = summary.get(key)
        _need(v is None or _finite(v), path, key, "a finite number or null", v)
    mean = summary.get("mean")
    _need(isinstance(mean, list) and len(mean) > 0 and all(_finite(x) for x in mean), path, "mean",
          "a list of finite numbers", mean)
    cov = summary.get("covariance")
    _need(isinstance(cov, list) and len(cov) == len(mean)
          and all(isinstance(r, list) and len(r) == len(mean) and all(_finite(x) for x in r) for r in cov),
          path, "covariance", f"a {len(mean)}x{len(mean)} list of finite numbers", cov)
    seed = summary.get("seed", 0)
    _need(isinstance(seed, int) and not isinstance(seed, bool), path, "seed", "an integer", seed)
    for key in ("problem", "constants", "versions"):
        _need(isinstance(summary.get(key, {}), dict), path, key, "a JSON object", summary.get(key))
    for key in ("w2_estimator", "log_z_estimator"):
        _need(isinstance(summary.get(key, ""), str), path, key, "a string", summary.get(key))
    return summary


_BOUND_NUM = ("lhs", "rhs", "constant", "lhs_se", "rhs_se", "margin_se")


def check_bounds(bounds, path: Path) -> list:
    """Check the shape of a loaded ``bounds.json`` (a list of verdict objects)."""
    _need(isinstance(bounds, list), path, "the top level", "a JSON list of verdicts", type(bounds).__name__)
    for i, b in enumerate(bounds):
        _need(isinstance(b, dict), path, f"[{i}]", "a JSON object", b)
        for key in ("name", "outcome"):
            _need(isinstance(b.get(key), str), path, f"[{i}].{key}", "a string", b.get(key))
        for key in _BOUND_NUM:
            _need(key in b, path, f"[{i}].{key}", "present (a number or null)", "missing")
            v = b[key]
            _need(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)), path, f"[{i}].{key}",
                  "a number or null", v)
        for key in ("estimator", "note", "statement", "source", "kind"):
            _need(isinstance(b.get(key, ""), str), path, f"[{i}].{key}", "a string", b.get(key))
    return bounds


def check_summary_fits(summary: dict, d: int, path: Path) -> dict:
    """``summary.json`` must describe a d-dimensional measure: its mean of length d (the covariance, d x d,
    follows from :func:`check_summary`)."""
    _need(len(summary["mean"]) == d, path, "mean", f"a list of {d} numbers (problem.dim = {d})", summary["mean"])
    return summary


#: a weight sum further than this from 1 is not a probability measure (weights are written normalised)
WEIGHT_SUM_TOL = 1e-6


def check_measure(P, w, d: int, path: Path):
    """The final weighted measure of ``results.nc``: particles (N, d) finite and not absurd, N >= 2, weights
    (N,) finite, >= 0 and summing to 1. Returns ``(P, w)`` as float64 arrays."""
    import numpy as np

    P, w = np.asarray(P, np.float64), np.asarray(w, np.float64)
    _need(P.ndim == 2 and P.shape[1] == d and P.shape[0] >= 2, path, "particles",
          f"an (N, {d}) array with N >= 2 (problem.dim = {d})", f"shape {P.shape}")
    bad = ~(np.isfinite(P) & (np.abs(P) <= MAX_ABS_RESULT))
    _need(not bad.any(), path, "particles", f"finite numbers (|x| <= {MAX_ABS_RESULT:g})",
          f"{P[bad][0] if bad.any() else 0} at particle {np.argwhere(bad)[0][0] if bad.any() else 0}")
    _need(w.shape == (P.shape[0],), path, "weights", f"a vector of {P.shape[0]} (one per particle)",
          f"shape {w.shape}")
    bad = ~np.isfinite(w) | (w < 0)
    _need(not bad.any(), path, "weights", "finite and >= 0", f"{w[bad][0] if bad.any() else 0}")
    _need(abs(w.sum() - 1.0) <= WEIGHT_SUM_TOL, path, "weights", "summing to 1", f"sum {w.sum():.6g}")
    return P, w
