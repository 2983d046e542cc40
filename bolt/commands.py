"""``bolt run`` (the main job), ``bolt bounds`` and ``bolt report``."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

from bolt.errors import ResultsError

__all__ = ["register", "run_config", "PICARD_KEYS", "MFLD_KEYS", "check_checkpoint", "run_state", "promised_outputs",
           "clear_run_dir"]

DEFAULT_OUT = "bolt-run"
PICARD_KEYS = ("particles", "chains", "damping", "tolerance", "max_iterations", "min_iterations", "warmup",
               "inner_steps", "step_size", "adapt", "kernel", "buffer", "final_blocks", "field_size", "field_cv",
               "devices")
MFLD_KEYS = ("particles", "step_size", "horizon", "tolerance", "devices", "precision")


def _versions() -> dict:
    import jax
    import numpyro

    from bolt._version import __version__

    return {"bolt": __version__, "jax": jax.__version__, "numpyro": numpyro.__version__}


def solver_settings(cfg: dict) -> dict:
    """The solver keyword arguments for the configured method."""
    s = cfg["solver"]
    m = s["method"]
    if m.startswith("picard"):
        return {k: s[k] for k in PICARD_KEYS}
    if m == "mfld":
        return {k: s[k] for k in MFLD_KEYS}
    return {"grid_points": s["grid_points"], "damping": s["damping"], "tolerance": s["tolerance"]}


def promised_outputs(cfg: dict) -> list[str]:
    """The files a finished run of ``cfg`` holds: its results and every output ``[output]`` asks for."""
    o = cfg.get("output", {}) if isinstance(cfg, dict) else {}
    out = ["config.toml", "results.nc", "summary.json"]
    out += ["bounds.json"] if o.get("bounds", True) else []
    out += ["bridge.json", "bridge.nc"] if o.get("bridge", False) else []
    out += ["report.html"] if o.get("report", True) else []
    return out


def _promised(out: Path) -> list[str]:
    import tomllib

    try:
        return promised_outputs(tomllib.loads((out / "config.toml").read_text(encoding="utf-8-sig")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return promised_outputs({})  # an unreadable config.toml is reported where it is read


def run_state(out: Path) -> str | None:
    """``"finished"`` (every output the run promised written, no checkpoint), ``"in progress"`` (a config,
    checkpoint or summary, but not all of them) or ``None`` for a directory."""
    if (out / "summary.json").is_file() and not (out / "checkpoint.npz").is_file() \
            and all((out / f).is_file() for f in _promised(out)):
        return "finished"
    if any((out / f).exists() for f in ("config.toml", "checkpoint.npz", "summary.json")):
        return "in progress"
    return None


def clear_run_dir(out: Path) -> None:
    """Remove every file a run directory can hold (those its manifest lists and every bolt output name) under
    a new, empty manifest: nothing of an old run survives ``--overwrite``, and a kill midway leaves old files
    the manifest does not list (refused as foreign), never old files passing as new."""
    from bolt.io import RUN_DIR_FILES, read_manifest, start_manifest
    from bolt.rundir import safe_name

    try:
        listed = list((read_manifest(out) or {"files": {}})["files"])
    except ResultsError:  # a corrupt manifest: the known names are removed all the same
        listed = []
    start_manifest(out)
    for name in dict.fromkeys([*RUN_DIR_FILES, *filter(safe_name, listed)]):
        (out / name).unlink(missing_ok=True)


def _a(state: str) -> str:
    return "a finished" if state == "finished" else "an in-progress"


def run_config(cfg: dict | None, out: str | Path, *, resume: bool = False, quiet: bool = False,
               overwrite: bool = False) -> dict:
    """Solve a resolved config and write ``config.toml``, ``summary.json``, ``results.nc`` into ``out``.

    Then, as ``[output]`` asks: ``bounds.json`` (``bounds``), ``bridge.json`` and ``bridge.nc`` (``bridge``,
    :func:`bolt.dynamics.bridge.evaluate_run` with the defaults of ``bolt bridge``), ``report.html`` (``report``).

    A checkpoint (``checkpoint.npz``) is written atomically after every completed iteration;
    ``resume=True`` continues from it with the run directory's own ``config.toml`` (refused when that
    file was edited, :func:`bolt.rundir.verify_run_config`; ``cfg``, when given, must be the same
    config), or starts the run afresh from it when it died before its first checkpoint. The config's
    ranges and the memory the run needs are checked and the problem (and any data file) built before
    the directory is touched, so a failing config never changes an existing run; a directory that
    holds a run is refused unless ``overwrite``; one process writes a run directory at a time
    (:class:`~bolt.io.RunLock`).
    """
    from bolt.config import problem_from_config
    from bolt.io import RunLock, atomic_write_text, load_checkpoint
    from bolt.rundir import config_changes, config_digest, config_text, fingerprint, verify_run_config

    out = Path(out)
    ck = None
    if resume:
        if not out.is_dir():
            raise ResultsError(f"resume: no run directory at {out}")
        saved = verify_run_config(out, "resume")
        if cfg is not None and config_digest(cfg) != config_digest(saved):
            raise ResultsError(f"resume: the config given differs from {out}/config.toml "
                               f"({config_changes(saved, cfg)}); resume with the run's own config (give no "
                               f"CONFIG), or start a new run with --out NEW_DIR")
        cfg = saved
        if run_state(out) == "finished":
            raise ResultsError(f"resume: the run in {out} is already complete")
    else:
        if out.exists() and not out.is_dir():
            raise ResultsError(f"--out: {out} exists and is not a directory")
        state = run_state(out) if out.is_dir() else None
        if state is not None and not overwrite:
            raise ResultsError(f"--out: {out} holds {_a(state)} run; continue it with `bolt run --resume {out}`, "
                               f"or replace it with --overwrite")
    check_run(cfg)  # ranges and memory, before anything is allocated
    problem = problem_from_config(cfg)  # validates and loads data before anything is written
    check_problem(cfg, problem)
    fp = fingerprint(cfg)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"--out: cannot create {out}: {exc.strerror or exc}") from None
    with RunLock(out, "resume" if resume else "run"):
        state = run_state(out)  # again under the lock: another process may have written meanwhile
        if resume:
            if state == "finished":
                raise ResultsError(f"resume: the run in {out} is already complete")
            if cfg["solver"]["method"] != "grid" and (out / "checkpoint.npz").is_file():
                ck = load_checkpoint(out / "checkpoint.npz")
                check_checkpoint(ck, cfg, out / "checkpoint.npz")
            # no checkpoint: the run died before its first one; it starts again from its saved config
        else:
            if state is not None and not overwrite:
                raise ResultsError(f"--out: {out} holds {_a(state)} run (written meanwhile by another process); "
                                   f"continue it with `bolt run --resume {out}`, or replace it with --overwrite")
            clear_run_dir(out)  # --overwrite (or a fresh directory): nothing of an old run survives
            atomic_write_text(out / "config.toml", config_text(cfg, fp))
            from bolt._faults import fault_point

            fault_point("started")  # config written, no checkpoint yet
        return _solve_and_write(cfg, problem, out, ck, quiet, fp)


def check_checkpoint(ck: dict, cfg: dict, path: Path) -> None:
    """A checkpoint (perhaps from an older bolt, without a config hash) must fit the config it resumes, and
    hold every array the solver restores, finite (one line naming the array)."""
    import numpy as np

    from bolt.problem.model import Field

    s, d = cfg["solver"], cfg["problem"]["dim"]
    key = "particles" if s["method"] == "mfld" else "samples"
    arr = ck.get(key)
    want = (s["particles"], d)
    if arr is None or "iteration" not in ck or getattr(arr, "shape", None) != want:
        got = None if arr is None else getattr(arr, "shape", None)
        raise ResultsError(f"resume: {path} does not fit {path.parent}/config.toml ({key} of shape {got}, the config "
                           f"needs {want}: solver.particles x problem.dim); start a new run with --out NEW")
    need = [key, "iteration"]
    if s["method"] != "mfld":
        need += [f"field_{n}" for n in Field._fields] + ["mcmc_leaves", "trace_residual"]
        if "mcmc_leaves" in ck and np.ndim(ck["mcmc_leaves"]) == 0 and np.issubdtype(ck["mcmc_leaves"].dtype,
                                                                                      np.integer):
            need += [f"mcmc_{i}" for i in range(max(int(ck["mcmc_leaves"]), 0))]
    for name in need:
        _ck_need(name in ck, path, name, "present", "missing")
    for name in ("iteration", *(["mcmc_leaves"] if "mcmc_leaves" in need else [])):
        v = np.asarray(ck[name])
        _ck_need(v.ndim == 0 and np.issubdtype(v.dtype, np.integer) and int(v) >= 0, path, name,
                 "an integer >= 0", v)
    for name, v in ck.items():
        if name == key or name.startswith(("field_", "last_field_")):  # (a sampler state may hold an inf)
            v = np.asarray(v)
            if np.issubdtype(v.dtype, np.floating):
                _ck_need(bool(np.all(np.isfinite(v))), path, name, "finite", "NaN or inf")


def _ck_need(cond: bool, path: Path, name: str, want: str, got) -> None:
    if not cond:
        raise ResultsError(f"resume: {path}: {name} must be {want}, got {got}; the checkpoint is corrupt: "
                           f"remove it to start the run again from its config.toml, or start a new run with "
                           f"--out NEW")


def check_run(cfg: dict) -> None:
    """Checks of a resolved config that need no problem: the memory the run needs (:mod:`bolt.resources`)."""
    from bolt.resources import check_memory

    check_memory(cfg)


def check_problem(cfg: dict, problem) -> None:
    """Checks that need the problem: its constants finite, β and τ in the estimators' range, enough particles."""
    from bolt.resources import check_ranges

    check_ranges(cfg, problem)


def _solve_and_write(cfg: dict, problem, out: Path, ck, quiet: bool, fp: dict | None = None) -> dict:
    """The body of a run under its lock: solve, summarize, write results, bounds and report."""
    import json
    import time

    import jax
    import numpy as np

    from bolt._faults import fault_point
    from bolt.estimators.summary import summarize, summarize_to_precision
    from bolt.io import remove_run_file, save_checkpoint, save_results, to_inference_data, write_json
    from bolt.rundir import check_results_finite, fingerprint
    from bolt.solve import solve

    fp = fingerprint(cfg) if fp is None else fp
    stamp = {k: np.asarray(v) for k, v in fp.items()}
    stamp["config_json"] = np.asarray(json.dumps(cfg, sort_keys=True))

    loading: list = []  # the background import's thread, once started

    def on_iteration(k, data):
        save_checkpoint(out / "checkpoint.npz", {**data, **stamp})
        fault_point(f"checkpoint:{k}")
        if not loading:  # after the solve's own tracing, overlap ~0.8 s of the summary's imports with it
            loading.append(_import_in_background("arviz"))

    s = cfg["solver"]
    kwargs = solver_settings(cfg)
    if s["method"] != "grid":
        kwargs.update(checkpoint=ck, on_iteration=on_iteration, progress_bar=(not quiet) and sys.stderr.isatty())
    timings: dict[str, float] = {}  # seconds per phase, in this process (a resumed solve counts its own part)
    t0 = time.perf_counter()
    result = solve(problem, s["method"], seed=s["seed"], **kwargs)
    timings["solve"] = time.perf_counter() - t0
    fault_point("solved")  # after the last checkpoint, before any result is written
    t0 = time.perf_counter()
    # the estimators' randomness is independent across solvers run with the same seed
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(s["seed"]), 7), zlib.crc32(s["method"].encode()))
    o = cfg["output"]
    if o["target_rel_se"] > 0:
        summary, result = summarize_to_precision(key, problem, result, target_rel_se=o["target_rel_se"],
                                                 max_draws=o["max_draws"], logz_samples=s["logz_samples"])
    else:
        summary = summarize(key, problem, result, logz_samples=s["logz_samples"])
    timings["summarize"] = time.perf_counter() - t0
    summary.update(seed=s["seed"], versions=_versions(), problem=problem.describe(),
                   constants=problem.constants(), compilations=list(result.compilations), **fp, config=cfg)
    check_results_finite(summary)  # no NaN, null or overflow is ever written as a result
    t0 = time.perf_counter()
    save_results(out / "results.nc", to_inference_data(result, problem))
    timings["results"] = time.perf_counter() - t0
    summary["timings"] = timings
    fault_point("results")
    write_json(out / "summary.json", summary)
    fault_point("summary")
    if cfg["output"]["bounds"]:
        from bolt.bounds import evaluate_run

        t0 = time.perf_counter()
        evaluate_run(out, problem=problem, result=result, summary=summary)
        timings["bounds"] = time.perf_counter() - t0
    if cfg["output"]["bridge"]:  # the path measure, with bolt bridge's defaults (MATH.md §4)
        from bolt.dynamics.bridge import evaluate_run as evaluate_bridge

        t0 = time.perf_counter()
        evaluate_bridge(out, problem=problem, quiet=quiet)
        timings["bridge"] = time.perf_counter() - t0
    if cfg["output"]["report"]:
        from bolt.diagnostics.report import write_report

        t0 = time.perf_counter()
        write_report(out)
        timings["report"] = time.perf_counter() - t0
    write_json(out / "summary.json", summary)  # now with every phase's time
    fault_point("outputs")
    remove_run_file(out / "checkpoint.npz")
    return summary


def _import_in_background(*modules: str):
    """Import ``modules`` in a daemon thread: the solve spends its time in XLA computations, which release
    the GIL, so the imports of later phases overlap with it (Python's import lock makes a later
    ``import`` of the same module wait for this one rather than run twice). An import that fails here
    fails again, with its message, where the module is used."""
    import importlib
    import threading

    def load():
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # reported where the module is imported for use
                pass

    thread = threading.Thread(target=load, name="bolt-imports", daemon=True)
    thread.start()
    return thread


def _residual(summary: dict) -> str:
    floor, p = summary.get("residual_floor"), summary.get("residual_p_value")
    if floor is None or p is None:
        return f"{summary['residual']:.4g}"
    return f"{summary['residual']:.3g} (noise floor {floor:.2g}, p = {p:.2f})"


def print_summary(summary: dict, out: Path) -> None:
    """A human-readable table of a run's headline numbers."""
    conv = "yes" if summary["converged"] else "NO (stopping rule not met; see residual)"
    rows = [
        ("solver", summary["solver"]), ("converged", conv), ("iterations", summary["iterations"]),
        ("residual (KSD^2)", _residual(summary)),
        *([("drift (z)", f"{summary['drift_z']:+.2f} (p = {summary['drift_p_value']:.2f})")]
          if summary.get("drift_z") is not None else []),
        *([("final drift (z)", f"{summary['final_drift_z']:+.2f} (p = {summary['final_drift_p_value']:.2f}; "
                               f"all final draws)")]
          if summary.get("final_drift_z") is not None else []),
        ("risk R(mu*)", f"{summary['risk']:.5g} ± {summary['risk_se']:.2g}"),
        ("KL(mu*|gamma)", f"{summary['kl']:.5g} ± {summary['kl_se']:.2g}"),
        ("log Z", f"{summary['log_z']:.5g} ± {summary['log_z_se']:.2g} ({summary['log_z_estimator']})"),
        ("free energy F", f"{summary['free_energy']:.5g} ± {summary['free_energy_se']:.2g}"),
        ("W2^2(mu*, gamma)", f"{summary['w2_squared_to_prior']:.4g} ± {summary.get('w2_squared_to_prior_se', 0):.2g} "
                             f"({summary['w2_estimator']})"),
        ("mean", "[" + ", ".join(f"{x:.4g}" for x in summary["mean"]) + "]"),
        ("seed", summary["seed"]),
    ]
    if summary.get("timings"):
        t = summary["timings"]
        rows.append(("time (s)", ", ".join(f"{k} {v:.1f}" for k, v in t.items()) + f"; total {sum(t.values()):.1f}"))
    width = max(len(r[0]) for r in rows)
    print(f"bolt run — results in {out}")
    for name, val in rows:
        print(f"  {name:<{width}}  {val}")


def _cmd_run(args) -> int:
    from bolt.config import load_config

    if args.resume:
        out = Path(args.resume)
        if args.overwrite:
            raise ResultsError("--resume DIR continues the run in DIR: --overwrite cannot be given with it")
        if args.out is not None and Path(args.out).resolve() != out.resolve():
            raise ResultsError(f"--resume {out} writes into {out}: --out {args.out} names another directory "
                               f"(give no --out, or the same directory)")
        cfg = load_config(args.config) if args.config else None  # must match the run's own config
        summary = run_config(cfg, out, resume=True, quiet=args.quiet)
    else:
        cfg = load_config(args.config)
        if args.out is None:  # the default directory never clobbers an earlier run: bolt-run, bolt-run-2, ...
            out, i = Path(DEFAULT_OUT), 1
            while out.exists() and (not out.is_dir() or run_state(out) is not None):
                i += 1
                out = Path(f"{DEFAULT_OUT}-{i}")
            if i > 1 and not args.quiet:
                print(f"bolt: {DEFAULT_OUT} holds an earlier run; writing to {out}", file=sys.stderr)
        else:
            if not args.out.strip():
                raise ResultsError("--out: empty directory name")
            out = Path(args.out)
        summary = run_config(cfg, out, quiet=args.quiet, overwrite=args.overwrite)
    if not args.quiet:
        print_summary(summary, out)
        if (out / "bounds.json").is_file():
            from bolt.io import load_bounds
            from bolt.verdicts import Verdict

            print("  bounds (MATH.md §3):")
            print_bounds([Verdict.from_dict(b) for b in load_bounds(out / "bounds.json")])
    elif not summary["converged"]:
        print(f"bolt: warning: the solve did not converge (residual {summary['residual']:.3g})", file=sys.stderr)
    return 0


def print_bounds(bounds) -> None:
    """A table of verdicts: both sides with their errors, the outcome and the margin in SE units."""
    print(f"  {'check':<22} {'lhs':>20} {'rhs':>20} {'constant':>10}  {'verdict':<16} margin")
    for b in bounds:
        def side(v, se):
            return f"{v:.4g}" + ("" if se is None or se != se or se == 0 else f" ± {se:.2g}")
        margin = "" if b.margin_se != b.margin_se else (
            f"{b.margin_se:+.1f} SE" if abs(b.margin_se) < 1e6 else ("exact" if b.margin_se > 0 else "-inf"))
        lhs = f"ratio {side(b.lhs, b.lhs_se)}" if b.kind == "rate" else side(b.lhs, b.lhs_se)
        print(f"  {b.name:<22} {lhs:>20} {side(b.rhs, b.rhs_se):>20} {b.constant:>10.4g}  {b.outcome:<16} {margin}")


def _locked(run_dir: str, command: str):
    from bolt.io import RunLock

    if not Path(run_dir).is_dir():
        raise ResultsError(f"{command}: no run directory at {run_dir}")
    return RunLock(run_dir, command)


def _cmd_bounds(args) -> int:
    from bolt.bounds import evaluate_run

    with _locked(args.run_dir, "bounds"):
        bounds = evaluate_run(args.run_dir)
    print(f"bolt bounds — {args.run_dir}/bounds.json")
    print_bounds(bounds)
    return 0


def _cmd_report(args) -> int:
    from bolt.diagnostics.report import write_report

    with _locked(args.run_dir, "report"):
        path = write_report(args.run_dir)
    print(f"bolt report — wrote {path}")
    return 0


def register(sub) -> None:
    """Add ``run`` (and the subcommands of later modules) to the CLI."""
    p = sub.add_parser("run", help="solve for mu* and write config.toml, summary.json, results.nc")
    p.add_argument("config", nargs="?", help="TOML config (default: the built-in default problem)")
    p.add_argument("--out", default=None,
                   help=f"output directory (default: ./{DEFAULT_OUT}, or ./{DEFAULT_OUT}-2, ... if that holds a run)")
    p.add_argument("--resume", metavar="DIR", help="continue an interrupted run in DIR (with DIR's config; a "
                                                   "CONFIG given too must be the same config)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars or table")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("bounds", help="evaluate the theory's bounds for a saved run; writes RUN_DIR/bounds.json")
    p.add_argument("run_dir", help="a directory written by bolt run")
    p.set_defaults(func=_cmd_bounds)

    p = sub.add_parser("report", help="write RUN_DIR/report.html (self-contained, images embedded)")
    p.add_argument("run_dir", help="a directory written by bolt run")
    p.set_defaults(func=_cmd_report)

    from bolt.dynamics.cli import register as register_bridge  # bolt bridge (MATH.md §4)
    register_bridge(sub)
    from bolt.sweep.cli import register as register_sweep  # bolt sweep (docs/sweep.md)
    register_sweep(sub)
    from bolt.dynamics.tracking_cli import register as register_dynamics  # bolt dynamics (MATH.md §4, greedy)
    register_dynamics(sub)
