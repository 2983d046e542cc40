"""Input laws π and targets f: the data of a problem, validated.

Input laws:
- :class:`GaussianInputs` — ``N(0, I_p)`` (closed forms where they exist);
- :class:`SampleInputs` — a fixed Monte Carlo sample from ``N(0, I_p)`` (or any given array);
- :class:`DataInputs` — an empirical data set ``(X, Y)``; π is the empirical law of ``X``.

Targets:
- :class:`Teacher` — ``f(x) = Σ_k c_k σ(x; v_k)`` (same unit σ as the student);
- :class:`Linear` — ``f(x) = ⟨a, x⟩``;
- :class:`Realizable` — ``f = f̂(·; N(m, τI))``;
- :class:`CallableTarget` — a user function ``f(x)`` on single inputs;
- :class:`DataTarget` — the labels ``Y`` of a data set.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bolt.errors import BoltError

__all__ = [
    "GaussianInputs", "SampleInputs", "DataInputs", "load_data",
    "Teacher", "Linear", "Realizable", "CallableTarget", "DataTarget", "check_array",
]


def check_array(value, name: str, *, shape: tuple | None = None, ndim: int | None = None) -> np.ndarray:
    """Convert to a finite float64 array and check its shape; errors name the field ``name``.

    ``shape`` entries may be ``None`` (any size).
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BoltError(f"{name}: expected an array of numbers, got {type(value).__name__}") from None
    if ndim is not None and arr.ndim != ndim:
        raise BoltError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise BoltError(f"{name}: expected shape {want}, got {arr.shape}")
    if arr.size == 0:
        raise BoltError(f"{name}: empty array")
    if not np.all(np.isfinite(arr)):
        raise BoltError(f"{name}: contains NaN or inf")
    return arr


# ----------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class GaussianInputs:
    """π = N(0, I_p). ``samples`` is the size of the fixed sample used where no closed form exists."""

    samples: int = 4096
    kind: str = field(default="gaussian", init=False)


@dataclass(frozen=True)
class SampleInputs:
    """π = the empirical law of a fixed sample ``X`` ``(n, p)``; ``X=None`` draws ``samples`` from N(0, I_p)."""

    samples: int = 4096
    X: np.ndarray | None = None
    kind: str = field(default="sample", init=False)


@dataclass(frozen=True)
class DataInputs:
    """π = the empirical law of ``X`` ``(n, p)`` of a data set with labels ``Y`` ``(n,)``."""

    X: np.ndarray
    Y: np.ndarray
    source: str = "<array>"
    kind: str = field(default="data", init=False)

    def __post_init__(self):
        X = check_array(self.X, "problem.data: X", ndim=2)
        Y = check_array(self.Y, "problem.data: Y", ndim=1)
        if Y.shape[0] != X.shape[0]:
            raise BoltError(f"problem.data: Y has {Y.shape[0]} rows but X has {X.shape[0]}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "Y", Y)


def load_data(path: str | Path) -> DataInputs:
    """Load a data set from ``.npz`` (arrays ``X`` ``(n, p)`` and ``Y`` ``(n,)``) or ``.csv``.

    A CSV file has one row per example, the label ``Y`` in the last column and an optional
    header row (detected when its first row is not numeric).
    """
    p = Path(path)
    if not p.is_file():
        raise BoltError(f"problem.data: file not found: {p}")
    if p.suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                missing = [k for k in ("X", "Y") if k not in z.files]
                if missing:
                    raise BoltError(f"problem.data: {p} has no array {' or '.join(missing)} (found {z.files})")
                X, Y = z["X"], z["Y"]
            for name, arr in (("X", X), ("Y", Y)):
                if np.iscomplexobj(arr):
                    raise BoltError(f"problem.data: {name} in {p} is complex ({arr.dtype}); bolt needs real numbers")
                if arr.dtype.kind not in "biuf":
                    raise BoltError(f"problem.data: {name} in {p} has dtype {arr.dtype}, not real numbers")
        except BoltError:
            raise
        except Exception as exc:  # noqa: BLE001 — a corrupt file of any kind
            raise BoltError(f"problem.data: cannot read {p}: {exc}") from None
    elif p.suffix == ".csv":
        try:
            with p.open(newline="", encoding="utf-8-sig") as fh:  # a byte-order mark is accepted
                rows = [r for r in csv.reader(fh) if r]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise BoltError(f"problem.data: {p} is not a text CSV file ({exc})") from None
        except OSError as exc:
            raise BoltError(f"problem.data: cannot read {p}: {exc.strerror or exc}") from None
        if rows:
            try:
                [float(c) for c in rows[0]]
            except ValueError:
                rows = rows[1:]
        if len({len(r) for r in rows}) > 1:
            raise BoltError(f"problem.data: {p} has rows of different lengths")
        try:
            arr = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
        except ValueError as exc:
            raise BoltError(f"problem.data: {p} is not numeric CSV: {exc}") from None
        if arr.ndim != 2 or arr.shape[1] < 2 or arr.shape[0] == 0:
            raise BoltError(f"problem.data: {p} needs at least one row of inputs and a label column")
        X, Y = arr[:, :-1], arr[:, -1]
    else:
        raise BoltError(f"problem.data: unsupported file type {p.suffix!r} (use .npz or .csv)")
    return DataInputs(X, Y, source=str(p))


# ----------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Teacher:
    """f(x) = Σ_k c_k σ(x; v_k); ``coefficients`` default to ``1/m``."""

    weights: np.ndarray
    coefficients: np.ndarray | None = None
    kind: str = field(default="teacher", init=False)

    def __post_init__(self):
        V = check_array(self.weights, "problem.target.weights", ndim=2)
        c = (np.full(V.shape[0], 1.0 / V.shape[0]) if self.coefficients is None
             else check_array(self.coefficients, "problem.target.coefficients", shape=(V.shape[0],)))
        object.__setattr__(self, "weights", V)
        object.__setattr__(self, "coefficients", c)


@dataclass(frozen=True)
class Linear:
    """f(x) = ⟨a, x⟩."""

    a: np.ndarray
    kind: str = field(default="linear", init=False)

    def __post_init__(self):
        object.__setattr__(self, "a", check_array(self.a, "problem.target.a", ndim=1))


@dataclass(frozen=True)
class Realizable:
    """f = f̂(·; N(mean, τI)), realizable by µ° = N(mean, τI) with KL(µ°‖γ_τ) = |mean|²/(2τ).

    ``nodes`` is used only by units other than erf / erf_bias (tanh, custom): there f is the network
    of ``nodes`` fixed antithetic draws of N(mean, τI). For erf and erf_bias f is exact
    (``erf(⟨m,x⟩/sqrt(1 + 2τ|x|²))``, resp. with the bias), and on the arcsine route f̃ and R0 are
    deterministic quadratures of that exact f; ``nodes`` is then ignored.
    """

    mean: np.ndarray
    nodes: int = 4096
    kind: str = field(default="realizable", init=False)

    def __post_init__(self):
        object.__setattr__(self, "mean", check_array(self.mean, "problem.target.mean", ndim=1))
        n = self.nodes
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise BoltError(f"problem.target.nodes: expected an integer, got {n!r}")
        if int(n) < 2:
            raise BoltError("problem.target.nodes: must be at least 2")
        object.__setattr__(self, "nodes", int(n))


@dataclass(frozen=True)
class CallableTarget:
    """A user function ``f(x)`` of a single input ``x`` ``(p,)`` (JAX-traceable)."""

    fn: Callable
    name: str = "callable"
    kind: str = field(default="callable", init=False)

    def __post_init__(self):
        if not callable(self.fn):
            raise BoltError("problem.target: a callable target must be a function f(x)")


@dataclass(frozen=True)
class DataTarget:
    """The labels ``Y`` of the data set given as inputs."""

    kind: str = field(default="data", init=False)
