"""Run directories: atomic writes, ``results.nc`` (ArviZ InferenceData), checkpoints, ``summary.json``.

Every file is written to a temporary name in the same directory and renamed into place, so an
interruption never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bolt.errors import ResultsError

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_json", "save_checkpoint", "load_checkpoint",
           "to_inference_data", "save_results", "load_results", "load_summary", "load_json", "load_bounds",
           "RunLock", "clean_stale_temporaries", "load_field"]


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text atomically."""
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj) -> None:
    """Write JSON atomically (NaN written as null)."""

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, float)):
            return None if not np.isfinite(x) else float(x)
        if isinstance(x, np.integer):
            return int(x)
        if isinstance(x, np.bool_):
            return bool(x)
        if isinstance(x, np.ndarray):
            return clean(x.tolist())
        return x

    atomic_write_text(path, json.dumps(clean(obj), indent=2) + "\n")


def save_checkpoint(path: str | Path, data: dict) -> None:
    """Save a solver checkpoint (a dict of arrays) atomically as ``.npz``."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in data.items()})
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`; clear error when missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"checkpoint: no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001
        raise ResultsError(f"checkpoint: {path} is corrupt: {exc}") from None


def to_inference_data(result, problem=None):
    """An ArviZ ``InferenceData`` for a solve.

    Groups: ``posterior`` (``w`` with dims chain, draw, w_dim: the last inner chains for Picard,
    the particles as one chain otherwise; the observables ``w_norm_sq`` = |w|² and, given the
    problem, ``psi`` = Ψ(w; µ_K)), ``sample_stats`` (lp, diverging, energy, step_size,
    tree_depth / acceptance_rate where the sampler has them), ``particles`` (the final weighted
    measure, dims particle, w_dim), ``fixed_point`` (the per-iteration trace, dim iteration) and
    ``field`` (the :class:`~bolt.problem.Field` of µ_K whose Gibbs measure the draws sample:
    ``particles`` (field_particle, w_dim), ``weights`` (field_particle), ``fhat`` (input); read back by
    :func:`load_field`).
    """
    import arviz as az
    import xarray as xr

    d = result.particles.shape[1]
    coords = {"w_dim": np.arange(d)}
    if result.chains is not None:
        post = {"w": np.asarray(result.chains)}
    else:
        post = {"w": np.asarray(result.particles)[None]}
    post["w_norm_sq"] = np.sum(post["w"] ** 2, -1)
    if problem is not None:  # the observable Ψ(w; µ_K) at every draw
        import jax.numpy as jnp

        flat = post["w"].reshape(-1, d)
        post["psi"] = np.asarray(problem.psi_field(jnp.asarray(flat), result.field)).reshape(post["w"].shape[:2])
    ss = {}
    if result.sample_stats:
        st = result.sample_stats
        if "potential_energy" in st:
            ss["lp"] = -st["potential_energy"]
        if "diverging" in st:
            ss["diverging"] = st["diverging"].astype(bool)
        if "energy" in st:
            ss["energy"] = st["energy"]
        if "adapt_state.step_size" in st:
            ss["step_size"] = st["adapt_state.step_size"]
        if "num_steps" in st:
            ss["n_steps"] = st["num_steps"]
            ss["tree_depth"] = np.log2(st["num_steps"] + 1).astype(np.int64)
        if "accept_prob" in st:
            ss["acceptance_rate"] = st["accept_prob"]
    idata = az.from_dict(posterior=post, sample_stats=ss or None, coords=coords, dims={"w": ["w_dim"]})
    parts = xr.Dataset({"particles": (("particle", "w_dim"), np.asarray(result.particles)),
                        "weights": (("particle",), np.asarray(result.weights))},
                       coords={"w_dim": np.arange(d)})
    trace = xr.Dataset({k: (("iteration",), np.asarray(v, np.float64)) for k, v in result.trace.items()
                        if np.ndim(v) == 1 and len(v)})
    trace.attrs.update(method=result.method, converged=int(result.converged), iterations=int(result.iterations))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # non-standard group names are intended
        idata.add_groups({"particles": parts, "fixed_point": trace, "field": _field_dataset(result.field, d)})
    return idata


def _field_dataset(fld, d: int):
    """The field µ_K as a Dataset (the arrays of the arcsine or the expectation route; the other route's are empty)."""
    import xarray as xr

    return xr.Dataset({"particles": (("field_particle", "w_dim"), np.asarray(fld.particles, np.float64)),
                       "weights": (("field_particle",), np.asarray(fld.weights, np.float64)),
                       "fhat": (("input",), np.asarray(fld.fhat, np.float64))}, coords={"w_dim": np.arange(d)},
                      attrs={"description": "the field mu_K whose Gibbs measure Gamma(mu_K) the draws sample"})


def load_field(idata, path: str | Path, problem):
    """The saved field µ_K of a ``results.nc`` (:func:`to_inference_data`), or ``None`` for a file written
    before bolt saved it (its callers then fall back to the field of the draws, and say so).

    A field that does not fit ``problem`` (its route, dimension and input sample) is refused with a
    one-line error naming the file.
    """
    import jax.numpy as jnp

    from bolt.problem.model import Field

    if "field" not in idata.groups():
        return None
    g = idata["field"]
    for k in ("particles", "weights", "fhat"):
        if k not in g.data_vars:
            raise ResultsError(f"results: {path} field group lacks the variable {k!r}")
    P, a, fh = (np.asarray(g[k].values, np.float64) for k in ("particles", "weights", "fhat"))
    if problem.route == "arcsine":
        fits = P.ndim == 2 and P.shape[0] > 0 and P.shape[1] == problem.d and a.shape == P.shape[:1] and fh.size == 0
    else:
        fits = P.size == 0 and a.size == 0 and fh.shape == (problem.X.shape[0],)
    if not fits or not all(np.all(np.isfinite(x)) for x in (P, a, fh)):
        raise ResultsError(f"results: {path} field group does not fit the problem ({problem.route} route, dim "
                           f"{problem.d}; particles {P.shape}, weights {a.shape}, fhat {fh.shape}) or is not finite")
    return Field(jnp.asarray(P.reshape(-1, problem.d)), jnp.asarray(a), jnp.asarray(fh))


def save_results(path: str | Path, idata) -> None:
    """Write InferenceData to NetCDF atomically (``arviz.from_netcdf`` opens it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_results(path: str | Path):
    """Open ``results.nc`` as InferenceData; clear error when missing or corrupt."""
    import arviz as az

    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results: no results file at {path}")
    try:
        idata = az.from_netcdf(path)
    except Exception as exc:  # noqa: BLE001
        raise ResultsError(f"results: {path} is not a readable NetCDF results file ({type(exc).__name__})") from None
    for g in ("posterior", "particles", "fixed_point"):
        if g not in idata.groups():
            raise ResultsError(f"results: {path} lacks the group {g!r}")
    return idata


def load_json(path: str | Path):
    """Read a JSON file; clear error when missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results: no file at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"results: {path} is corrupt: {exc}") from None
    except OSError as exc:
        raise ResultsError(f"results: cannot read {path}: {exc.strerror or exc}") from None


def load_bounds(path: str | Path) -> list:
    """Read ``bounds.json``; one-line error naming the file and key when missing, corrupt or wrong-shaped."""
    from bolt.rundir import check_bounds

    return check_bounds(load_json(path), Path(path))


def load_summary(run_dir: str | Path) -> dict:
    """Read ``summary.json`` of a run directory; one-line error when missing, corrupt or wrong-shaped."""
    from bolt.rundir import check_summary

    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise ResultsError(f"run: no summary.json in {run_dir}")
    try:
        summary = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"run: {path} is corrupt: {exc}") from None
    return check_summary(summary, path)


LOCK_NAME = ".bolt.lock"
#: files a run directory may hold; a killed atomic write of one leaves ``.NAME.XXXXXXXX.tmp``
TEMP_NAMES = ("config.toml", "summary.json", "checkpoint.npz", "results.nc", "bounds.json", "report.html",
              "bridge.json", "bridge.nc")


def clean_stale_temporaries(run_dir: str | Path) -> list[str]:
    """Remove ``.NAME.*.tmp`` left by an atomic write that was killed (SIGKILL, power loss).

    Only safe under the run-directory lock (no other bolt process is writing there).
    """
    removed = []
    for name in TEMP_NAMES:
        for p in Path(run_dir).glob(f".{name}.*.tmp"):
            try:
                p.unlink()
                removed.append(p.name)
            except OSError:
                pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class RunLock:
    """One writer per run directory: ``RUN_DIR/.bolt.lock`` holds ``pid host command``.

    Taken with an exclusive create, so two processes cannot both hold it; released on any exit
    from the ``with`` block. A lock whose process is gone (same host, PID not alive) is stale and
    is replaced; a live one — or one from another host, which cannot be checked — makes the second
    writer fail with a message naming the holder.
    """

    def __init__(self, run_dir: str | Path, command: str):
        self.path = Path(run_dir) / LOCK_NAME
        self.command = command
        self.held = False

    def __enter__(self) -> RunLock:
        import socket

        host = socket.gethostname()
        me = f"{os.getpid()} {host} {self.command}\n"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError as exc:
                if not isinstance(exc, FileExistsError):  # checked before any work: not after the bounds
                    raise ResultsError(f"{self.path.parent}: cannot write to this directory "
                                       f"({exc.strerror or exc})") from None
                try:
                    pid_s, lock_host, *what = self.path.read_text().split()
                    pid = int(pid_s)
                except (OSError, ValueError):  # unreadable: stale unless just created (its writer is mid-write)
                    pid, lock_host, what = -1, host, ["?"]
                    try:
                        young = time.time() - self.path.stat().st_mtime < 5.0
                    except OSError:
                        young = False
                    if young:
                        raise ResultsError(f"{self.path.parent}: another bolt process is taking the run-directory "
                                           f"lock {self.path}; wait for it") from None
                if lock_host == host and (pid < 0 or not _pid_alive(pid)):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise ResultsError(f"{self.path.parent}: another bolt process (pid {pid} on {lock_host}, "
                                   f"{' '.join(what) or '?'}) is writing this run directory; wait for it, or "
                                   f"remove {self.path} if that process is gone") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            self.held = True
            clean_stale_temporaries(self.path.parent)
            return self
        raise ResultsError(f"{self.path}: could not take the run-directory lock")

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
