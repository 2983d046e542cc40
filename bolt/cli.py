"""The ``bolt`` command line: ``bolt problem``, ``bolt run``, ``bolt bounds``, ``bolt report``.

Errors in user input print one line ``bolt: error: ...`` and exit with status 2 (no traceback).
Ctrl-C (SIGINT) and SIGTERM stop a run with status 130, keeping its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from bolt._version import __version__
from bolt.errors import BoltError

__all__ = ["main"]


def _setup_jax():
    """Point JAX at ``BOLT_PLATFORM`` (else ``JAX_PLATFORMS``, else the CPU).

    ``import bolt`` does not import JAX, so the platform applies here; an unknown or unavailable platform
    is a :class:`ConfigError`, never a silent run on the CPU.
    """
    plat = os.environ.get("BOLT_PLATFORM", "").strip()
    if plat:
        os.environ["JAX_PLATFORMS"] = plat
    else:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    from bolt.cache import enable_compilation_cache

    jax.config.update("jax_enable_x64", True)
    if plat:
        _check_platform(jax, plat)
    enable_compilation_cache()


def _check_platform(jax, plat: str) -> None:
    from bolt.errors import ConfigError

    try:
        jax.config.update("jax_platforms", plat)  # in effect while no backend has started (always, from the CLI)
        backend = jax.default_backend()
    except RuntimeError as exc:
        raise ConfigError(f"BOLT_PLATFORM: JAX cannot start platform {plat!r} "
                          f"({str(exc).splitlines()[0][:200]})") from None
    wanted = {"cuda": "gpu", "rocm": "gpu"}
    if backend not in {wanted.get(p.strip(), p.strip()) for p in plat.split(",")}:
        raise ConfigError(f"BOLT_PLATFORM: asked for {plat!r}, but JAX already runs on {backend!r} in this process")


def _in_swallowing_context(frame) -> bool:
    """Whether Python code at ``frame`` runs where an exception is printed and dropped ("Exception ignored
    in: ..."): a garbage-collection callback (JAX's ``_xla_gc_callback`` runs at every collection) or a
    finaliser."""
    import gc

    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _interrupt(signum, frame):
    """Ctrl-C and SIGTERM: raise KeyboardInterrupt, but never inside a GC callback or finaliser, which would
    swallow it and let the run go on (6 of 6 early Ctrl-Cs of `bolt run` did): re-send it 20 ms later."""
    if _in_swallowing_context(frame):
        import threading

        again = threading.Timer(0.02, os.kill, (os.getpid(), signum))
        again.daemon = True  # never holds the process open at exit
        again.start()
        return
    raise KeyboardInterrupt


def _cmd_problem(args) -> int:
    from bolt.config import load_config, problem_from_config
    from bolt.resources import check_memory
    from bolt.rundir import check_results_finite

    cfg = load_config(args.config)
    check_memory(cfg, solve=False)  # the input sample and target network must fit before they are drawn
    pb = problem_from_config(cfg)
    consts = pb.constants()
    check_results_finite({"constants": consts}, "problem")  # never a bare NaN
    info = {"problem": pb.describe(), **consts}
    if args.json:
        print(json.dumps(info, indent=2, allow_nan=False))
        return 0
    d = info["problem"]
    print(f"bolt {__version__} — problem")
    print(f"  weights d = {d['dim']}, inputs p = {d['input_dim']} ({d['inputs']}), activation {d['activation']}")
    print(f"  target {d['target']}, beta = {d['beta']:g}, tau = {d['tau']:g}, route: {consts['route']}")
    print(f"  R0              = {consts['R0']:.6g}")
    print(f"  R(gamma_tau)    = {consts['risk_at_prior']:.6g}")
    print(f"  L_sigma^2       = {consts['L_sigma_squared']:.6g} ({consts['L_sigma_squared_method']})")
    print(f"  kappa           = {consts['kappa']:.6g}   (L_sigma^2 * R(gamma_tau))")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="bolt",
        description="Entropy-regularized mean-field theory of two-layer networks: "
                    "solve for the Boltzmann fixed point mu* and check the theory.")
    ap.add_argument("--version", action="version", version=f"bolt {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("problem", help="print a problem and its constants (R0, R(gamma_tau), L_sigma^2, kappa)")
    p.add_argument("config", nargs="?", help="TOML config (default: the built-in default problem)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_problem)

    from bolt import commands

    commands.register(sub)  # run, bounds, report
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bolt`` console command; returns the exit status."""
    # Ctrl-C and SIGTERM (what SLURM, Kubernetes and `kill` send before a kill) stop a run with status 130:
    # the checkpoint written after the last completed iteration is kept and `--resume` continues. While
    # the modules load (NumPy's and JAX's extensions break on an exception mid-import) the signal is
    # held back and raised once they have loaded.
    pending: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(argv, pending)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str] | None, pending: list[int]) -> int:
    try:
        parser = _build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        _setup_jax()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _interrupt)
        if pending:
            raise KeyboardInterrupt
        return int(args.func(args) or 0)
    except BoltError as exc:
        print(f"bolt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bolt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bolt ... | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # a full disk, a vanished directory, ...: one line, the run directory's files intact
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"bolt: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 — an allocation the memory estimate missed: one line, not a C++ trace
        if not _out_of_memory(exc):
            raise
        print(f"bolt: error: out of memory on {os.environ.get('JAX_PLATFORMS') or 'the device'} "
              f"({(str(exc).splitlines() or [type(exc).__name__])[0][:200]}); reduce the sizes in the config "
              f"(docs/config.md, 'Memory')", file=sys.stderr)
        return 1


def _out_of_memory(exc: Exception) -> bool:
    """NumPy's MemoryError, or XLA's allocation failure (RESOURCE_EXHAUSTED, or "Out of memory" on a CPU)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return type(exc).__name__ in ("XlaRuntimeError", "JaxRuntimeError") and (
        "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
