"""Sweep files: parse ``[sweep]``, expand the grid and zip into points, validate every point.

A sweep file is TOML (data, never executed)::

    [sweep]
    base = "base.toml"            # a bolt config, relative to the sweep file (default: built-in problem)
    steps = ["run", "bounds"]     # per point: run, then any of bounds, bridge, report
    [sweep.grid]                  # cartesian product, in file order
    "regularization.beta" = [0.5, 1.0, 2.0]
    "solver.seed" = [0, 1, 2]
    [sweep.zip]                   # equal-length lists, varied together (one dimension)
    "regularization.tau" = [1.0, 0.5]
    "solver.particles" = [1000, 2000]
    [[sweep.fit]]                 # log-log fits drawn in sweep.html
    y = "kl"
    x = "regularization.beta"

Other top-level tables of the sweep file (``[problem]``, ``[solver]``, ...) override the base config
for every point. Each point's config is checked with :func:`bolt.config.resolve_config` before
anything runs; an error names the point and the key.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bolt.errors import ConfigError

__all__ = ["SweepSpec", "Point", "load_sweep", "parse_sweep", "STEPS"]

#: What a point may run, in this order; ``run`` is always first.
STEPS = ("run", "bounds", "bridge", "report")
_SWEEP_KEYS = {"base", "steps", "grid", "zip", "fit", "description"}
_FIT_KEYS = {"y", "x", "x_min", "x_max"}


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its directory name, its swept values and its resolved config."""

    name: str
    index: tuple          # position along each dimension of the sweep (grid dims, then the zip dim)
    values: dict          # dotted key -> value at this point
    config: dict          # resolved config (bolt.config.resolve_config), [output] set from the steps


@dataclass
class SweepSpec:
    """A parsed sweep file."""

    path: Path | None
    text: str
    base: Path | None
    steps: tuple
    grid: dict            # dotted key -> list of values
    zip: dict             # dotted key -> list of values (equal lengths)
    fits: list = field(default_factory=list)
    description: str = ""
    points: list = field(default_factory=list)

    @property
    def params(self) -> list[str]:
        """Every swept dotted key, grid first."""
        return list(self.grid) + list(self.zip)

    def dims(self) -> list[tuple[str, list[str]]]:
        """``(dimension name, [dotted keys on it])``: one per grid key, one shared by the zip keys."""
        names = short_names(self.params)
        out = [(names[k], [k]) for k in self.grid]
        if self.zip:
            out.append(("zip", list(self.zip)))
        return out


#: Names a dimension must not take: keyword arguments of ``Dataset.sel`` and names the sweep uses itself.
_RESERVED = {"zip", "point", "method", "tolerance", "drop", "indexers"}


def short_names(keys: list[str]) -> dict[str, str]:
    """The last component of each dotted key, or the key with ``_`` for ``.`` where that is ambiguous or reserved.

    ``"solver.method"`` becomes ``solver_method``, so that ``ds.sel(solver_method="mfld")`` works
    (``method`` is a keyword of ``Dataset.sel``).
    """
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 and s not in _RESERVED else k.replace(".", "_")) for k, s in zip(keys, last)}


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9._+-]{1,40}", v):
        return v
    if (isinstance(v, list) and 0 < len(v) <= 4
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
        return ",".join(repr(x) for x in v)  # a short vector: mean=1.0,0.0
    return "h" + hashlib.sha1(json.dumps(v, sort_keys=True).encode()).hexdigest()[:8]


def _set(raw: dict, key: str, value, where: str) -> None:
    parts = key.split(".")
    node = raw
    for i, p in enumerate(parts[:-1]):
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{where}: {'.'.join(parts[:i + 1])} is not a table, cannot set {key}")
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "target":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _flatten(t: dict, prefix: str = "") -> dict:
    """``{"a": {"b": [..]}}`` (unquoted dotted keys in TOML) -> ``{"a.b": [..]}``."""
    out = {}
    for k, v in t.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flatten(v, key) if isinstance(v, dict) else {key: v})
    return out


def _read_toml(p: Path, what: str) -> dict:
    if not p.is_file():
        raise ConfigError(f"{what}: file not found: {p}")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8-sig"))  # a UTF-8 byte-order mark, as in run configs
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: {p} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what}: {p} nests arrays or tables too deeply to read") from None
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {p}: {exc.strerror or exc}") from None


#: quantities of sweep.nc that are text, not numbers (a log-log fit of them is meaningless)
_TEXT_QUANTITIES = ("status", "error", "point")


def _check_fits(fits, swept: dict) -> list:
    """``[[sweep.fit]]`` checked with the sweep file, before any point runs: ``y`` a numeric quantity's name,
    ``x`` a swept parameter whose values are all numbers, ``x_min``/``x_max`` finite numbers."""
    import math

    if isinstance(fits, dict):
        fits = [fits]
    if not isinstance(fits, list):
        raise ConfigError("sweep.fit: expected [[sweep.fit]] tables with y and x")
    for i, f in enumerate(fits):
        if not isinstance(f, dict) or set(f) - _FIT_KEYS or not {"y", "x"} <= set(f):
            raise ConfigError(f"sweep.fit[{i}]: expected keys y, x (and optional x_min, x_max), got {f!r}")
        for key in ("y", "x"):
            if not isinstance(f[key], str) or not f[key]:
                raise ConfigError(f"sweep.fit[{i}].{key}: expected a name (a string), got {f[key]!r}")
        if f["y"] in _TEXT_QUANTITIES or f["y"].endswith("_outcome"):
            raise ConfigError(f"sweep.fit[{i}].y: {f['y']!r} is text, not a number to fit")
        if f["x"] not in swept:
            raise ConfigError(f"sweep.fit[{i}].x: {f['x']!r} is not a swept parameter")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in swept[f["x"]]):
            raise ConfigError(f"sweep.fit[{i}].x: {f['x']!r} takes values that are not numbers "
                              f"({swept[f['x']]!r}); a log-log fit needs numbers")
        for key in ("x_min", "x_max"):
            v = f.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ConfigError(f"sweep.fit[{i}].{key}: expected a finite number, got {v!r}")
    return fits


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file, expand it into points and validate each (:class:`~bolt.errors.ConfigError`)."""
    p = Path(path)
    raw = _read_toml(p, "sweep")
    return parse_sweep(raw, p.read_text(encoding="utf-8-sig"), where=p)


def parse_sweep(raw: dict, text: str = "", where: Path | None = None) -> SweepSpec:
    """Build a :class:`SweepSpec` from a parsed sweep file (``where``: its path, for relative paths)."""
    from bolt.config import resolve_config

    root = Path(where).resolve().parent if where is not None else Path.cwd()
    if "sweep" not in raw or not isinstance(raw["sweep"], dict):
        raise ConfigError("sweep: the file has no [sweep] table")
    sw = raw["sweep"]
    for k in sw:
        if k not in _SWEEP_KEYS:
            raise ConfigError(f"sweep.{k}: unknown key (expected one of {sorted(_SWEEP_KEYS)})")
    base_path, base_raw = None, {}
    if "base" in sw:
        if not isinstance(sw["base"], str) or not sw["base"]:
            raise ConfigError("sweep.base: expected the path of a bolt config file")
        base_path = (root / sw["base"]).resolve()
        base_raw = _read_toml(base_path, "sweep.base")
        if "sweep" in base_raw:
            raise ConfigError(f"sweep.base: {base_path} is itself a sweep file")
        data = base_raw.get("problem", {}).get("data") if isinstance(base_raw.get("problem"), dict) else None
        if isinstance(data, str) and data and not Path(data).is_absolute():
            base_raw["problem"]["data"] = str((base_path.parent / data).resolve())
    overrides = {k: v for k, v in raw.items() if k != "sweep"}
    data = overrides.get("problem", {}).get("data") if isinstance(overrides.get("problem"), dict) else None
    if isinstance(data, str) and data and not Path(data).is_absolute():
        overrides["problem"]["data"] = str((root / data).resolve())
    base_raw = _merge(base_raw, overrides)

    steps = sw.get("steps", ["run", "bounds"])
    if not isinstance(steps, list) or not steps or any(s not in STEPS for s in steps):
        raise ConfigError(f"sweep.steps: expected a list of {list(STEPS)} starting with \"run\", got {steps!r}")
    if steps[0] != "run" or len(set(steps)) != len(steps):
        raise ConfigError(f"sweep.steps: must start with \"run\" and name each step once, got {steps!r}")

    tables = {}
    for kind in ("grid", "zip"):
        t = sw.get(kind, {})
        if not isinstance(t, dict):
            raise ConfigError(f"sweep.{kind}: must be a table of dotted config keys and lists of values")
        t = _flatten(t)
        for k, vals in t.items():
            if not isinstance(vals, list) or not vals:
                raise ConfigError(f"sweep.{kind}.\"{k}\": expected a non-empty list of values, got {vals!r}")
            if k.split(".")[0] == "sweep" or len(k.split(".")) < 2:
                raise ConfigError(f"sweep.{kind}.\"{k}\": expected a dotted config key like \"regularization.beta\"")
            seen = [json.dumps(v, sort_keys=True) for v in vals]
            if kind == "grid" and len(set(seen)) != len(seen):
                raise ConfigError(f"sweep.{kind}.\"{k}\": repeated value (a point would run twice)")
        tables[kind] = dict(t)
    grid, zp = tables["grid"], tables["zip"]
    both = set(grid) & set(zp)
    if both:
        raise ConfigError(f"sweep: {sorted(both)[0]} is in both [sweep.grid] and [sweep.zip]")
    if not grid and not zp:
        raise ConfigError("sweep: nothing to sweep (add [sweep.grid] or [sweep.zip])")
    lens = {k: len(v) for k, v in zp.items()}
    if len(set(lens.values())) > 1:
        raise ConfigError(f"sweep.zip: lists must have equal lengths, got {lens}")
    if zp:
        rows = [json.dumps([zp[k][i] for k in zp], sort_keys=True) for i in range(len(next(iter(zp.values()))))]
        if len(set(rows)) != len(rows):
            raise ConfigError("sweep.zip: repeated combination of values (a point would run twice)")

    fits = _check_fits(sw.get("fit", []), {**grid, **zp})

    spec = SweepSpec(path=Path(where).resolve() if where is not None else None, text=text, base=base_path,
                     steps=tuple(steps), grid=grid, zip=zp, fits=fits, description=str(sw.get("description", "")))
    names = short_names(spec.params)
    zlen = len(next(iter(zp.values()))) if zp else 1
    points, seen_names = [], {}
    for gidx in itertools.product(*(range(len(v)) for v in grid.values())):
        for z in range(zlen):
            values = {k: grid[k][i] for k, i in zip(grid, gidx)}
            values.update({k: v[z] for k, v in zp.items()})
            name = "_".join(f"{names[k]}={_fmt(v)}" for k, v in values.items())
            if len(name) > 120:
                name = "p" + hashlib.sha1(name.encode()).hexdigest()[:12]
            if name in seen_names:  # e.g. two strings that only differ in characters left out of names
                name += "_" + hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:6]
            seen_names[name] = True
            point_raw = copy.deepcopy(base_raw)
            for k, v in values.items():
                _set(point_raw, k, v, f"point {name}")
            try:
                cfg = resolve_config(point_raw)
            except ConfigError as exc:
                raise ConfigError(f"point {name}: {exc}") from None
            cfg["output"].update(bounds="bounds" in steps, bridge="bridge" in steps, report="report" in steps)
            points.append(Point(name=name, index=gidx + ((z,) if zp else ()), values=values, config=cfg))
    spec.points = points
    return spec
