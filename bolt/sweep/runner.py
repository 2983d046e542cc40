"""Run a sweep's points on Dask distributed (or in a plain loop), one ordinary run directory per point.

Every point is ``OUT/points/<name>/``, written by :func:`bolt.commands.run_config` — the code path
of ``bolt run`` — inside a Dask worker, under the run directory's lock. The driver holds
``OUT/.bolt.lock`` for the whole sweep and keeps ``OUT/sweep.json`` (every point's status, error
and wall time) up to date after each point, written atomically.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from bolt.errors import BoltError, ConfigError, ResultsError

__all__ = ["run_point", "point_state", "run_sweep", "SweepOutcome", "SWEEP_FILES"]

SWEEP_FILES = ("sweep.toml", "sweep.json", "sweep.nc", "sweep.csv", "sweep.html", "fits.json")
#: XLA in a single-threaded Dask worker: one intra-op thread, so N workers use N cores.
WORKER_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _step_files(steps) -> list[str]:
    return ["summary.json"] + [f for s, f in (("bounds", "bounds.json"), ("bridge", "bridge.json"),
                                              ("report", "report.html")) if s in steps]


def point_state(point_dir: str | Path, steps) -> str | None:
    """``"finished"`` (every step's file written), ``"partial"`` (a run or steps left to do) or ``None`` (new)."""
    from bolt.commands import run_state

    d = Path(point_dir)
    if not d.is_dir():
        return None
    st = run_state(d)
    if st == "finished":
        return "finished" if all((d / f).is_file() for f in _step_files(steps)) else "partial"
    return None if st is None else "partial"


def _one_line(exc: BaseException) -> str:
    msg = str(exc) if isinstance(exc, BoltError) else f"{type(exc).__name__}: {exc}"
    msg = " ".join(msg.split())
    return msg if len(msg) <= 400 else msg[:397] + "..."


def run_point(point_dir: str, config: dict, steps) -> dict:
    """Run one point (in a Dask worker or in-process): a new run, a resumed one, or the missing steps.

    Returns ``{"status": "done" | "skipped" | "failed", "error", "wall_s", "pid", "host"}``; an error
    is caught and returned as one line (the traceback goes to ``POINT/error.txt``), never raised.
    """
    import socket

    t0 = time.time()
    out = {"status": "done", "error": "", "wall_s": 0.0, "pid": os.getpid(), "host": socket.gethostname()}
    d = Path(point_dir)
    try:
        from bolt.cli import _setup_jax

        _setup_jax()
        from bolt.commands import run_config, run_state

        state = point_state(d, steps)
        if state == "finished":
            out["status"] = "skipped"
        elif state == "partial" and run_state(d) == "finished":  # the solve is done; a later step is not
            _finish_steps(d, steps)
        elif state == "partial" and (d / "config.toml").is_file():
            run_config(None, d, resume=True, quiet=True)
        else:
            run_config(config, d, quiet=True, overwrite=True)
        (d / "error.txt").unlink(missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - a failing point is data, not the end of the sweep
        out.update(status="failed", error=_one_line(exc))
        try:
            d.mkdir(parents=True, exist_ok=True)
            from bolt.io import atomic_write_text

            atomic_write_text(d / "error.txt", traceback.format_exc())
        except OSError:
            pass
    out["wall_s"] = time.time() - t0
    return out


def _finish_steps(d: Path, steps) -> None:
    from bolt.config import load_config, problem_from_config
    from bolt.io import RunLock

    with RunLock(d, "sweep"):
        if "bounds" in steps and not (d / "bounds.json").is_file():
            from bolt.bounds import evaluate_run

            evaluate_run(d)
        if "bridge" in steps and not (d / "bridge.json").is_file():
            from bolt.dynamics.bridge import evaluate_run as evaluate_bridge

            evaluate_bridge(d, problem=problem_from_config(load_config(d / "config.toml")), quiet=True)
        if "report" in steps and not (d / "report.html").is_file():
            from bolt.diagnostics.report import write_report

            write_report(d)


@dataclass
class SweepOutcome:
    """What a sweep did: per-point records (name → dict) and the aggregate files written."""

    out: Path
    records: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.records.items() if r["status"] == "failed"]


def _differs(a: dict, b: dict, prefix: str = "") -> str | None:
    for k in sorted(set(a) | set(b)):
        key = f"{prefix}{k}"
        if key == "output":
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            r = _differs(va, vb, key + ".")
            if r:
                return r
        elif va != vb:
            return f"{key} = {vb!r} there, {va!r} in the sweep"
    return None


def _holds(out: Path) -> bool:
    return out.is_dir() and any((out / f).exists() for f in (*SWEEP_FILES, "points"))


def _keeps_old_points(spec, out: Path) -> None:
    """``--resume`` continues the sweep in ``out``: the sweep file may have grown (new points, new steps), but
    every point of the sweep there must still be one of its points, or its aggregates would be replaced by
    another sweep's."""
    import json

    try:
        old = {r["name"] for r in json.loads((out / "sweep.json").read_text(encoding="utf-8"))["points"]}
    except (OSError, ValueError, KeyError, TypeError):  # no (readable) record: the point directories
        old = {p.name for p in (out / "points").iterdir() if p.is_dir()} if (out / "points").is_dir() else set()
    gone = sorted(old - {p.name for p in spec.points})
    if gone:
        more = f" and {len(gone) - 3} more" if len(gone) > 3 else ""
        raise ResultsError(f"--resume: {out} holds a sweep with points this sweep file does not have "
                           f"({', '.join(gone[:3])}{more}): another sweep file? Resume with its own "
                           f"({out}/sweep.toml), use another --out, or replace it with --overwrite")


def prepare_out(spec, out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing sweep (unless ``resume``/``overwrite``) and check resumed points' configs.

    Run again under the sweep directory's lock (:func:`_sweep`): another sweep may have started meanwhile."""
    if out.exists() and not out.is_dir():
        raise ResultsError(f"--out: {out} exists and is not a directory")
    if _holds(out) and not resume and not overwrite:
        raise ResultsError(f"--out: {out} holds a sweep; continue it with --resume, or replace it with --overwrite")
    if resume and not overwrite:
        _keeps_old_points(spec, out)
        from bolt.config import load_config

        for p in spec.points:
            cfg_file = out / "points" / p.name / "config.toml"
            if cfg_file.is_file():
                try:
                    old = load_config(cfg_file)
                except ConfigError as exc:
                    raise ResultsError(f"point {p.name}: {cfg_file} is unreadable ({exc}); remove that directory "
                                       f"or use --overwrite") from None
                why = _differs(p.config, old)
                if why:
                    raise ResultsError(f"point {p.name}: {out / 'points' / p.name} holds a run of another config "
                                       f"({why}); use another --out, or --overwrite")


def _worker_count(workers: int | None) -> int:
    if workers is not None:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def connect(scheduler: str | None, workers: int | None, timeout: float):
    """A Dask client: to ``scheduler`` (error after ``timeout`` s), or a new LocalCluster of 1-thread processes."""
    from distributed import Client, LocalCluster

    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if scheduler:
        try:
            return Client(scheduler, timeout=timeout), None
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError for a bad address
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise ResultsError(f"--scheduler: no Dask scheduler reachable at {scheduler} within {timeout:g} s "
                               f"({why[:200]})") from None
    env = {k: os.environ.get(k, v) for k, v in WORKER_ENV.items()}
    env["JAX_PLATFORMS"] = os.environ.get("JAX_PLATFORMS", "cpu")
    # Ctrl-C reaches the whole process group: the worker processes are started with SIGINT ignored
    # (inherited through exec), so that only this process handles it and closes the cluster.
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        cluster = LocalCluster(n_workers=_worker_count(workers), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL, env=env)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    return Client(cluster), cluster


def _record(p, res: dict) -> dict:
    return {"name": p.name, "values": p.values, "index": list(p.index), **res}


def run_sweep(spec, out: str | Path, *, scheduler: str | None = None, workers: int | None = None,
              resume: bool = False, overwrite: bool = False, quiet: bool = False, timeout: float = 20.0,
              aggregate: bool = True) -> SweepOutcome:
    """Run every point of ``spec`` into ``out/points/`` and aggregate into ``sweep.nc``, ``.csv``, ``.html``.

    ``workers = 0`` runs the points one after another in this process, without Dask. A
    KeyboardInterrupt (Ctrl-C, or SIGTERM through the CLI) stops the sweep: finished points stay
    intact, running ones keep their checkpoints, and the exception propagates.
    """
    out = Path(out).absolute()  # workers elsewhere need the full (shared) path
    prepare_out(spec, out, resume=resume, overwrite=overwrite)
    from bolt._faults import fault_point

    fault_point("sweep:checked")  # checked, not yet locked: the window another sweep can fall into
    fresh = overwrite and not resume
    finished = {p.name for p in spec.points
                if not fresh and point_state(out / "points" / p.name, spec.steps) == "finished"}
    todo = [p for p in spec.points if p.name not in finished]
    client = cluster = None
    if todo and (scheduler or workers != 0):  # before the directory is touched: an unreachable cluster changes nothing
        client, cluster = connect(scheduler, workers, timeout)
    try:
        return _sweep(spec, out, todo, finished, client, fresh, quiet, aggregate, resume)
    finally:
        if client is not None:
            client.close(timeout=5)
        if cluster is not None:
            cluster.close(timeout=10)


def _sweep(spec, out: Path, todo, finished, client, fresh, quiet, aggregate, resume=False) -> SweepOutcome:
    from bolt.io import RunLock, atomic_write_text, write_json

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"--out: cannot create {out}: {exc.strerror or exc}") from None
    outcome = SweepOutcome(out=out)
    with RunLock(out, "sweep"):
        prepare_out(spec, out, resume=resume, overwrite=fresh)  # again under the lock: no second sweep slips in
        (out / "points").mkdir(exist_ok=True)
        if fresh:
            shutil.rmtree(out / "points", ignore_errors=True)
            for f in SWEEP_FILES:
                (out / f).unlink(missing_ok=True)
            (out / "points").mkdir()
        atomic_write_text(out / "sweep.toml", spec.text)
        for p in spec.points:
            status = "skipped" if p.name in finished else "pending"
            outcome.records[p.name] = _record(p, {"status": status, "error": "", "wall_s": 0.0})

        def save_manifest():
            write_json(out / "sweep.json", {"steps": list(spec.steps), "params": spec.params,
                                            "points": list(outcome.records.values())})

        save_manifest()
        bar = _progress(len(spec.points), len(spec.points) - len(todo), quiet)
        nfail = 0

        def done(p, res):
            nonlocal nfail
            outcome.records[p.name] = _record(p, res)
            save_manifest()
            nfail += res["status"] == "failed"
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=nfail, refresh=True)
            elif not quiet:
                tail = (f"failed: {res['error']}" if res["status"] == "failed"
                        else f"{res['status']} ({res['wall_s']:.1f} s)")
                print(f"bolt sweep: {p.name}: {tail}", file=sys.stderr, flush=True)

        try:
            if todo and client is None:
                for p in todo:
                    done(p, run_point(str(out / "points" / p.name), p.config, spec.steps))
            elif todo:
                _run_dask(client, spec, out, todo, done)
        except KeyboardInterrupt:
            outcome.interrupted = True
            for r in outcome.records.values():
                if r["status"] == "pending":
                    r["status"] = "interrupted"
            save_manifest()
            raise
        finally:
            if bar is not None:
                bar.close()
        if aggregate:
            from bolt.sweep.aggregate import write_aggregates

            outcome.files = write_aggregates(spec, out, outcome.records)
    return outcome


def _run_dask(client, spec, out: Path, todo, done) -> None:
    import uuid

    from distributed import as_completed

    tag = uuid.uuid4().hex[:8]
    futures = {}
    try:
        for p in todo:
            f = client.submit(run_point, str(out / "points" / p.name), p.config, spec.steps,
                              key=f"bolt-point-{p.name}-{tag}", pure=False, retries=0)
            futures[f] = p
        for f in as_completed(futures):
            p = futures[f]
            try:
                res = f.result()
            except Exception as exc:  # noqa: BLE001 - a worker died (KilledWorker) or the task was lost
                res = {"status": "failed", "error": _one_line(exc), "wall_s": float("nan")}
            done(p, res)
    finally:
        try:
            client.cancel(list(futures))
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


def _progress(total: int, initial: int, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=initial, desc="bolt sweep", unit="point", file=sys.stderr)
    bar.set_postfix(failed=0)
    return bar
