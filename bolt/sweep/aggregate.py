"""Aggregate a sweep's run directories: ``sweep.nc`` (xarray), ``sweep.csv`` (flat) and ``sweep.html``.

Quantities per point:

- every scalar of ``summary.json`` (nested tables flattened with ``_``: ``constants_kappa``;
  booleans as 0/1, ``null`` as NaN), with its ``_se`` companion where the summary has one;
- every check of ``bounds.json`` as ``<name>_lhs``, ``<name>_lhs_se``, ``<name>_rhs``,
  ``<name>_rhs_se``, ``<name>_constant``, ``<name>_margin_se``, ``<name>_holds`` (0/1) and
  ``<name>_outcome`` (a string);
- the scalars of ``bridge.json`` with the prefix ``bridge_`` when the sweep runs that step;
- ``status`` (``done``, ``skipped`` = finished earlier, ``failed``, ``interrupted``), ``error`` and ``wall_s``.

A failed point has NaN (or an empty string) for every quantity.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["point_quantities", "build_dataset", "loglog_fit", "fits", "write_aggregates"]

_SKIP_SUMMARY = {"problem", "versions", "compilations", "mean", "covariance", "seed"}
_VERDICT_FIELDS = ("lhs", "lhs_se", "rhs", "rhs_se", "constant", "margin_se")
_META = ("status", "error", "wall_s")


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _flatten(d: dict, prefix: str, out: dict) -> None:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _flatten(v, key + "_", out)
        elif isinstance(v, bool):
            out[key] = float(v)
        elif v is None or isinstance(v, (int, float)):
            out[key] = _num(v)
        elif isinstance(v, str):
            out[key] = v


def point_quantities(point_dir: str | Path) -> dict:
    """Every scalar of a point's ``summary.json``, ``bounds.json`` and ``bridge.json`` (see the module doc)."""
    from bolt.io import load_json

    d = Path(point_dir)
    out: dict = {}
    if (d / "summary.json").is_file():
        s = load_json(d / "summary.json")
        _flatten({k: v for k, v in s.items() if k not in _SKIP_SUMMARY}, "", out)
    if (d / "bounds.json").is_file():
        for b in load_json(d / "bounds.json"):
            for f in _VERDICT_FIELDS:
                out[f"{b['name']}_{f}"] = _num(b.get(f))
            out[f"{b['name']}_holds"] = _num(b.get("holds"))
            out[f"{b['name']}_outcome"] = str(b.get("outcome", ""))
    if (d / "bridge.json").is_file():
        br = load_json(d / "bridge.json")
        _flatten({k: v for k, v in br.items() if k not in ("settings", "verdicts")}, "bridge_", out)
    return out


def _coord(values: list):
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, np.int64 if all(isinstance(v, int) for v in values) else np.float64)
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, bool)
    if all(isinstance(v, str) for v in values):
        return np.asarray(values, object)
    return np.asarray([json.dumps(v) for v in values], object)


def build_dataset(spec, out: str | Path, records: dict):
    """The ``xarray.Dataset`` of a sweep: one dimension per grid key, one shared by the zip keys."""
    import xarray as xr

    from bolt.sweep.spec import short_names

    out = Path(out)
    dims = spec.dims()
    names = short_names(spec.params)
    shape = tuple(len(spec.grid[k]) for k in spec.grid) + ((len(next(iter(spec.zip.values()))),) if spec.zip else ())
    per_point = {}
    for p in spec.points:
        rec = records.get(p.name, {})
        q = point_quantities(out / "points" / p.name) if rec.get("status") in ("done", "skipped") else {}
        q.update(status=rec.get("status", "missing"), error=rec.get("error", ""), wall_s=_num(rec.get("wall_s")))
        per_point[p.name] = q
    keys: list[str] = []
    for q in per_point.values():
        keys += [k for k in q if k not in keys]
    data = {}
    dim_names = [d for d, _ in dims]
    for k in keys:
        is_str = any(isinstance(q.get(k), str) for q in per_point.values())
        arr = np.full(shape, "" if is_str else np.nan, object if is_str else np.float64)
        for p in spec.points:
            v = per_point[p.name].get(k)
            if v is not None:
                arr[p.index] = v if is_str else _num(v) if not isinstance(v, str) else np.nan
        data[k] = (dim_names, arr)
    coords = {}
    for k in spec.grid:
        coords[names[k]] = (names[k], _coord(spec.grid[k]), {"param": k})
    for k in spec.zip:
        coords[names[k]] = ("zip", _coord(spec.zip[k]), {"param": k})
    point_names = np.full(shape, "", object)
    for p in spec.points:
        point_names[p.index] = p.name
    coords["point"] = (dim_names, point_names)
    from bolt._version import __version__

    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(bolt_version=__version__, steps=json.dumps(list(spec.steps)), params=json.dumps(spec.params),
                    dims=json.dumps({d: ks for d, ks in dims}), sweep_file=spec.text,
                    base=str(spec.base or "built-in default problem"))
    return ds


def loglog_fit(x, y, y_se=None) -> dict:
    """Slope of log y against log x with its standard error.

    With positive standard errors of y for every point: weighted least squares in log space
    (σ_log y = se/y), the slope's SE from the covariance scaled up by sqrt(χ²/dof) when that
    exceeds 1. Otherwise ordinary least squares with the residual SE (NaN with two points).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    se = None if y_se is None else np.asarray(y_se, np.float64)
    x, y = x[ok], y[ok]
    nan = float("nan")
    if len(x) < 2 or np.ptp(np.log(x)) == 0:
        return {"slope": nan, "slope_se": nan, "intercept": nan, "n": int(len(x)), "method": "too few points"}
    lx, ly = np.log(x), np.log(y)
    A = np.stack([lx, np.ones_like(lx)], 1)
    if se is not None and np.all(np.isfinite(se[ok])) and np.all(se[ok] > 0):
        s = se[ok] / y
        Aw, yw = A / s[:, None], ly / s
        cov = np.linalg.inv(Aw.T @ Aw)
        coef = cov @ Aw.T @ yw
        dof = len(x) - 2
        if dof > 0:
            chi2 = float(np.sum((yw - Aw @ coef) ** 2)) / dof
            cov = cov * max(1.0, chi2)
        method = "weighted least squares"
    else:
        coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
        dof = len(x) - 2
        s2 = float(np.sum((ly - A @ coef) ** 2)) / dof if dof > 0 else nan
        cov = s2 * np.linalg.inv(A.T @ A)
        method = "least squares"
    return {"slope": float(coef[0]), "slope_se": float(math.sqrt(cov[0, 0])) if np.isfinite(cov[0, 0]) else nan,
            "intercept": float(coef[1]), "n": int(len(x)), "method": method}


def _is_seed(key: str) -> bool:
    return key.rsplit(".", 1)[-1] == "seed"


def groups(ds, xdim: str):
    """Selections of ``ds`` with every dimension but ``xdim`` (and seed dimensions, pooled) fixed."""
    import itertools

    attrs_dims = json.loads(ds.attrs["dims"])
    others = [d for d in ds.dims if d != xdim and not all(_is_seed(k) for k in attrs_dims.get(d, []))]
    for idx in itertools.product(*(range(ds.sizes[d]) for d in others)):
        sel = dict(zip(others, idx))
        label = ", ".join(_label(ds, d, i) for d, i in sel.items())
        yield label, ds.isel(sel)


def _label(ds, dim, i) -> str:
    attrs_dims = json.loads(ds.attrs["dims"])
    keys = attrs_dims.get(dim, [dim])
    from bolt.sweep.spec import short_names

    names = short_names(json.loads(ds.attrs["params"]))
    return ", ".join(f"{names[k]}={_show(ds[names[k]].values[i])}" for k in keys)


def _show(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


def xdim_of(ds, key: str) -> tuple[str, str]:
    """(dimension, coordinate name) of a swept dotted key."""
    from bolt.sweep.spec import short_names

    name = short_names(json.loads(ds.attrs["params"]))[key]
    return ds[name].dims[0], name


def fits(spec, ds) -> list[dict]:
    """The ``[[sweep.fit]]`` log-log fits, one per group of the other (non-seed) parameters."""
    res = []
    for f in spec.fits:
        y = f["y"]
        why = (f"no quantity {y!r} in the sweep" if y not in ds else
               None if ds[y].dtype.kind in "fiu" else f"{y!r} is not a numeric quantity")
        if why:  # one row saying so: the sweep's other outputs are still written
            res.append({"y": y, "x": f["x"], "group": "", "slope": float("nan"), "slope_se": float("nan"),
                        "intercept": float("nan"), "n": 0, "method": why})
            continue
        dim, cname = xdim_of(ds, f["x"])
        for label, sub in groups(ds, dim):
            flat = sub[y].transpose(dim, ...)
            xv = np.asarray(sub[cname].values, np.float64)
            yv = flat.values.reshape(len(xv), -1)
            sev = sub[y + "_se"].transpose(dim, ...).values.reshape(len(xv), -1) if y + "_se" in sub else None
            xs = np.repeat(xv, yv.shape[1])
            keep = np.ones(len(xs), bool)
            if "x_min" in f:
                keep &= xs >= f["x_min"]
            if "x_max" in f:
                keep &= xs <= f["x_max"]
            r = loglog_fit(xs[keep], yv.ravel()[keep], None if sev is None else sev.ravel()[keep])
            res.append({"y": y, "x": f["x"], "group": label, **r})
    return res


def _atomic_netcdf(ds, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_csv(spec, ds) -> str:
    """One row per point: name, the swept values, then every quantity."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    qs = [k for k in ds.data_vars if k not in _META]
    w.writerow(["point", *spec.params, *_META, *qs])
    for p in spec.points:
        row = [p.name, *(json.dumps(p.values[k]) if isinstance(p.values[k], (list, dict)) else p.values[k]
                         for k in spec.params)]
        for k in (*_META, *qs):
            v = ds[k].values[p.index]
            row.append("" if isinstance(v, float) and math.isnan(v) else (repr(float(v)) if isinstance(
                v, (float, np.floating)) else v))
        w.writerow(row)
    return buf.getvalue()


def write_aggregates(spec, out: str | Path, records: dict) -> list[Path]:
    """Write ``sweep.nc``, ``sweep.csv`` and ``sweep.html`` (each atomically); returns their paths."""
    from bolt.io import atomic_write_text, write_json
    from bolt.sweep.html import sweep_html

    out = Path(out)
    ds = build_dataset(spec, out, records)
    fit_rows = fits(spec, ds)
    ds.attrs["fits"] = json.dumps(fit_rows)
    _atomic_netcdf(ds, out / "sweep.nc")
    atomic_write_text(out / "sweep.csv", to_csv(spec, ds))
    atomic_write_text(out / "sweep.html", sweep_html(spec, ds, fit_rows))
    if fit_rows:
        write_json(out / "fits.json", fit_rows)
    return [out / "sweep.nc", out / "sweep.csv", out / "sweep.html"]
