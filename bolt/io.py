"""Run directories: atomic writes, ``results.nc`` (ArviZ InferenceData), checkpoints, ``summary.json``.

Every file is written to a temporary name in the same directory and renamed into place, so an
interruption never leaves a half-written file. In a run directory that holds a ``manifest.json``
(every one ``bolt run`` writes), each such write also records the file's SHA-256, size and the
command that wrote it there (:func:`record_write`); :func:`bolt.rundir.verify_run_files` checks it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bolt.errors import ResultsError
from bolt.rundir import MANIFEST_NAME, file_sha256, read_manifest

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_json", "save_checkpoint", "load_checkpoint",
           "to_inference_data", "save_results", "load_results", "load_summary", "load_json", "load_bounds",
           "RunLock", "clean_stale_temporaries", "load_measure", "MANIFEST_NAME", "read_manifest", "start_manifest",
           "record_write", "remove_run_file", "file_sha256", "RUN_DIR_FILES", "load_field"]


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_replace(path: Path, data: bytes, before_rename=None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: one line naming the file, the previous version kept
        Path(tmp).unlink(missing_ok=True)
        if exc.filename:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, rename), and record
    it in the directory's manifest (:func:`record_write`): the new hash is recorded beside the previous
    one before the rename and alone after it, so at every moment the file matches the manifest."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256(data).hexdigest()
    _write_replace(path, data, lambda: record_write(path, digest, len(data), pending=True))
    record_write(path, digest, len(data))


# ----------------------------------------------------------------------------- the manifest

#: every file a run directory can hold (a directory written before the manifest existed has no list)
RUN_DIR_FILES = ("config.toml", "summary.json", "checkpoint.npz", "results.nc", "bounds.json", "report.html",
                 "bridge.json", "bridge.nc", "dynamics.json", "dynamics.nc")
#: run directories this process holds the lock of: resolved path -> (command, session id)
_HELD: dict[Path, tuple[str, str]] = {}
_SESSION = os.urandom(6).hex()  # writes outside any lock (the Python API) in this process


def _save_manifest(run_dir: Path, m: dict) -> None:
    _write_replace(run_dir / MANIFEST_NAME, (json.dumps(m, indent=1, sort_keys=True) + "\n").encode())


def _writer(run_dir: Path) -> tuple[str, str]:
    return _HELD.get(run_dir.resolve(), ("python", _SESSION))


def start_manifest(run_dir: str | Path) -> None:
    """Begin an empty manifest: every later write into ``run_dir`` is recorded in it."""
    _save_manifest(Path(run_dir), {"version": 1, "files": {}})


def record_write(path: str | Path, sha256: str, size: int, pending: bool = False) -> None:
    """Record a file written (its hash, size, the command and session) in its directory's manifest — only
    where the directory has one (a run directory written by an older bolt is left as it was).

    ``pending``: the file is about to be renamed into place; the previous entry is kept under
    ``previous`` until the rename is recorded, so either version of the file is accepted meanwhile.
    """
    path = Path(path)
    if path.name == MANIFEST_NAME:
        return
    m = read_manifest(path.parent)
    if m is None:
        return
    command, session = _writer(path.parent)
    entry = {"sha256": sha256, "size": int(size), "command": command, "session": session}
    old = m["files"].get(path.name)
    if pending and isinstance(old, dict):
        entry["previous"] = {k: v for k, v in old.items() if k != "previous"}
    m["files"][path.name] = entry
    _save_manifest(path.parent, m)


def remove_run_file(path: str | Path) -> None:
    """Remove a file of a run directory and its manifest entry."""
    path = Path(path)
    path.unlink(missing_ok=True)
    m = read_manifest(path.parent)
    if m is not None and path.name in m["files"]:
        del m["files"][path.name]
        _save_manifest(path.parent, m)


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


def _scratch_dir(fallback: Path) -> Path:
    """A memory-backed directory for serialising NetCDF (``/dev/shm``), else ``fallback``."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else fallback


def save_results(path: str | Path, idata) -> None:
    """Write InferenceData to NetCDF atomically (``arviz.from_netcdf`` opens it).

    HDF5 is serialised into a scratch file in memory (``/dev/shm``) and its bytes then written with
    :func:`atomic_write_bytes`: a full disk fails in that plain write (one OSError, the previous file
    kept), never inside HDF5, whose failed close crashed the interpreter at exit."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=_scratch_dir(path.parent))
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        data = Path(tmp).read_bytes()
    finally:
        Path(tmp).unlink(missing_ok=True)
    atomic_write_bytes(path, data)


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


def load_measure(run_dir: str | Path, d: int):
    """``(particles, weights, idata)`` of ``results.nc``, checked (:func:`bolt.rundir.check_measure`): one-line
    errors naming the file and the variable."""
    from bolt.rundir import check_measure

    path = Path(run_dir) / "results.nc"
    idata = load_results(path)
    try:
        P, w = idata.particles["particles"].values, idata.particles["weights"].values
    except KeyError as exc:
        raise ResultsError(f"results: {path} lacks the variable {exc.args[0]!r} of the group 'particles'; "
                           f"not a results.nc bolt run writes") from None
    P, w = check_measure(P, w, d, path)
    return P, w, idata


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
TEMP_NAMES = (*RUN_DIR_FILES, MANIFEST_NAME)


def clean_stale_temporaries(run_dir: str | Path) -> list[str]:
    """Remove ``.NAME.*.tmp`` left by an atomic write that was killed (SIGKILL, power loss).

    Only safe under the run-directory lock (no other bolt process is writing there).
    """
    removed = []
    try:
        listed = tuple((read_manifest(run_dir) or {"files": {}})["files"])
    except ResultsError:
        listed = ()
    for name in dict.fromkeys((*TEMP_NAMES, *listed)):
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
                self._create(me)
            except FileExistsError:
                pid, lock_host, what = self._holder(host)
                if lock_host == host and (pid < 0 or not _pid_alive(pid)):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise ResultsError(f"{self.path.parent}: another bolt process (pid {pid} on {lock_host}, "
                                   f"{' '.join(what) or '?'}) is writing this run directory; wait for it, or "
                                   f"remove {self.path} if that process is gone") from None
            except OSError as exc:  # checked before any work: not after the bounds
                raise ResultsError(f"{self.path.parent}: cannot write to this directory "
                                   f"({exc.strerror or exc})") from None
            self.held = True
            _HELD[self.path.parent.resolve()] = (self.command, os.urandom(6).hex())
            clean_stale_temporaries(self.path.parent)
            return self
        raise ResultsError(f"{self.path}: could not take the run-directory lock")

    def _create(self, text: str) -> None:
        """The lock file with its content, or FileExistsError: written to a temporary file first and
        hard-linked into place (exclusive), so a full disk never leaves an empty lock behind."""
        fd, tmp = tempfile.mkstemp(prefix=".tmp.", suffix=LOCK_NAME, dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                raise
            except OSError:  # a filesystem without hard links: exclusive create (not atomic with the write)
                fd2 = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                try:
                    with os.fdopen(fd2, "w") as fh:
                        fh.write(text)
                except OSError:
                    self.path.unlink(missing_ok=True)
                    raise
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _holder(self, host: str) -> tuple[int, str, list]:
        """``(pid, host, command words)`` of the lock's holder; an unreadable lock is stale unless just created."""
        try:
            pid_s, lock_host, *what = self.path.read_text().split()
            return int(pid_s), lock_host, what
        except (OSError, ValueError):
            try:
                young = time.time() - self.path.stat().st_mtime < 5.0
            except OSError:
                young = False
            if young:
                raise ResultsError(f"{self.path.parent}: another bolt process is taking the run-directory "
                                   f"lock {self.path}; wait for it") from None
            return -1, host, ["?"]

    def __exit__(self, *exc) -> None:
        if self.held:
            _HELD.pop(self.path.parent.resolve(), None)
            self.path.unlink(missing_ok=True)
            self.held = False
