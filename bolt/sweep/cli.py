"""``bolt sweep SWEEP.toml``: run every point of a sweep file on Dask and aggregate (docs/sweep.md)."""

from __future__ import annotations

import sys
from pathlib import Path

from bolt.errors import ResultsError

__all__ = ["register"]

DEFAULT_OUT = "bolt-sweep"


def _cmd_sweep(args) -> int:
    from bolt.sweep.runner import SWEEP_FILES, run_sweep
    from bolt.sweep.spec import load_sweep

    if args.workers is not None and args.workers < 0:
        raise ResultsError(f"--workers: expected 0 (no Dask) or more, got {args.workers}")
    if args.scheduler and args.workers is not None:
        raise ResultsError("--workers sizes the embedded cluster; with --scheduler the cluster's own workers run "
                           "the points")
    if args.resume and args.overwrite:
        raise ResultsError("--resume continues the sweep in --out and --overwrite replaces it: give one of them")
    if args.timeout <= 0:
        raise ResultsError(f"--timeout: must be > 0, got {args.timeout}")
    spec = load_sweep(args.sweep)  # every point validated before anything runs
    if args.out is None:
        out, i = Path(DEFAULT_OUT), 1
        if not args.resume:  # the default directory never clobbers an earlier sweep
            while out.exists() and (not out.is_dir() or any((out / f).exists() for f in (*SWEEP_FILES, "points"))):
                i += 1
                out = Path(f"{DEFAULT_OUT}-{i}")
            if i > 1 and not args.quiet:
                print(f"bolt: {DEFAULT_OUT} holds an earlier sweep; writing to {out}", file=sys.stderr)
    else:
        if not args.out.strip():
            raise ResultsError("--out: empty directory name")
        out = Path(args.out)
    if not args.quiet:
        print(f"bolt sweep — {len(spec.points)} points ({', '.join(spec.steps)}) -> {out}", file=sys.stderr)
    try:
        outcome = run_sweep(spec, out, scheduler=args.scheduler, workers=args.workers, resume=args.resume,
                            overwrite=args.overwrite, quiet=args.quiet, timeout=args.timeout)
    except KeyboardInterrupt:
        print(f"bolt: sweep interrupted; finished points are kept in {out}/points; continue with "
              f"`bolt sweep {args.sweep} --out {out} --resume`", file=sys.stderr)
        raise
    recs = outcome.records.values()
    n = {s: sum(r["status"] == s for r in recs) for s in ("done", "skipped", "failed")}
    if not args.quiet:
        print(f"bolt sweep — {len(outcome.records)} points: {n['done']} run, {n['skipped']} finished earlier, "
              f"{n['failed']} failed; {out}/sweep.nc, sweep.csv, sweep.html")
    for name in outcome.failed:
        print(f"bolt: point {name} failed: {outcome.records[name]['error']}", file=sys.stderr)
    return 1 if outcome.failed else 0


def register(sub) -> None:
    """Add ``sweep`` to the CLI."""
    p = sub.add_parser("sweep", help="run a grid of configs (a sweep file) on Dask; writes DIR/points/*, "
                                     "sweep.nc, sweep.csv, sweep.html")
    p.add_argument("sweep", help="sweep file (TOML with a [sweep] table; docs/sweep.md)")
    p.add_argument("--out", default=None, help=f"sweep directory (default: ./{DEFAULT_OUT}, numbered if that "
                                               "holds a sweep)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a running Dask scheduler (tcp://host:8786); default: an embedded LocalCluster")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the embedded cluster (default: one per core; 0: no Dask, run the "
                        "points one after another in this process)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out: finished points are kept, interrupted ones resumed")
    p.add_argument("--overwrite", action="store_true", help="replace a sweep already in --out")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for --scheduler (default 20)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_sweep)
