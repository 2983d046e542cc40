"""``sweep.html``: a self-contained page (PNG figures embedded as base64) for a sweep.

Sections: the sweep (file, steps, point counts); failed points with their errors; the
``[[sweep.fit]]`` log-log fits (slope ± SE); every quantity that varies across the sweep against
each swept parameter (one line per setting of the other parameters, seeds pooled into a mean ±
its standard error; a bound's two sides drawn together); the quantities that do not vary. All
text from the sweep file, configs and errors is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import html
import json

import numpy as np

__all__ = ["sweep_html", "draw"]

_META = ("status", "error", "wall_s")
_MAX_LINES = 8
_CSS = ("body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
        "tr.warn{background:#fdd}img{max-width:100%}pre{background:#f6f6f6;padding:.5em;overflow-x:auto}")


def _png(fig) -> str:
    import base64
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _table(rows, header, warn=None) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
    body = ""
    for i, r in enumerate(rows):
        cls = ' class="warn"' if warn and warn[i] else ""
        body += f"<tr{cls}>" + "".join(f"<td>{esc(_fmt(c))}</td>" for c in r) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(x) -> str:
    if isinstance(x, (float, np.floating)):
        return "nan" if x != x else f"{float(x):.5g}"
    return str(x)


def _numeric(ds, k) -> bool:
    return ds[k].dtype.kind == "f"


def _varies(v: np.ndarray) -> bool:
    v = v[np.isfinite(v)]
    return len(v) > 1 and np.ptp(v) > 1e-12 * max(1.0, np.abs(v).max())


def _plotted(ds) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(title, [vars drawn together]) for the figures, and the quantities that do not vary."""
    verdicts = sorted({k[:-4] for k in ds.data_vars if k.endswith("_lhs")})
    skip = {f"{v}_{f}" for v in verdicts for f in ("lhs", "rhs", "lhs_se", "rhs_se", "holds", "outcome",
                                                     "constant", "margin_se")}
    figs, flat = [], []
    for k in ds.data_vars:
        if k in _META or k in skip or k.endswith("_se") or not _numeric(ds, k):
            continue
        (figs if _varies(ds[k].values) else flat).append(k)
    figs = [(k, [k]) for k in figs]
    for v in verdicts:
        if _varies(ds[f"{v}_lhs"].values) or _varies(ds[f"{v}_rhs"].values):
            figs.append((f"{v} (lhs solid, rhs dashed)", [f"{v}_lhs", f"{v}_rhs"]))
        else:
            flat += [f"{v}_lhs", f"{v}_rhs"]
    return figs, flat


def _series(sub, dim, var):
    """Mean over pooled (seed) dimensions and its SE; a single replicate uses the ``_se`` companion."""
    import warnings

    v = sub[var].transpose(dim, ...).values.reshape(sub.sizes[dim], -1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanstd of one replicate: masked below
        n = np.sum(np.isfinite(v), 1)
        mean = np.where(n > 0, np.nansum(v, 1) / np.maximum(n, 1), np.nan)
        if v.shape[1] > 1:
            se = np.where(n > 1, np.nanstd(v, 1, ddof=1) / np.sqrt(np.maximum(n, 1)), np.nan)
        elif var + "_se" in sub:
            se = sub[var + "_se"].transpose(dim, ...).values.reshape(-1)
        else:
            se = np.zeros_like(mean)
    return mean, se


def _xvals(ds, cname):
    x = ds[cname].values
    if x.dtype.kind in "iuf":
        return x.astype(np.float64), None
    return np.arange(len(x), dtype=np.float64), [str(s) for s in x]


def _figure(ds, title, variables, params) -> str:
    return _png(draw(ds, title, variables, params))


def draw(ds, title, variables, params, *, logy: bool | None = None):
    """A matplotlib figure: ``variables`` of a sweep dataset against each of ``params`` (dotted keys).

    One line per setting of the other non-seed parameters, seeds pooled into a mean ± SE; the first
    variable solid, the others dashed. ``logy`` forces the y scale (default: log when positive and
    spanning a decade, with a log x axis).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from bolt.sweep.aggregate import groups, xdim_of

    fig, axes = plt.subplots(1, len(params), figsize=(3.6 * len(params), 2.7), squeeze=False)
    for ax, key in zip(axes[0], params):
        dim, cname = xdim_of(ds, key)
        x, ticks = _xvals(ds, cname)
        allpos = ticks is None and np.all(x > 0) and x.max() / x.min() >= 4
        ys = []
        sets = list(groups(ds, dim))
        by_var = len(sets) == 1 and len(variables) > 1  # one setting: colour and label by variable
        for i, (label, sub) in enumerate(sets):
            if i >= _MAX_LINES:
                ax.text(0.02, 0.02, "more settings in sweep.nc", transform=ax.transAxes, fontsize=6)
                break
            for j, var in enumerate(variables):
                m, se = _series(sub, dim, var)
                ys.append(m)
                ax.errorbar(x, m, yerr=np.where(np.isfinite(se), se, 0), marker="o", ms=3, lw=1,
                            ls="-" if j == 0 else "--", capsize=2, color=f"C{j if by_var else i}",
                            label=var if by_var else (label or None) if j == 0 else None)
        yv = np.concatenate([np.ravel(y) for y in ys]) if ys else np.array([])
        yv = yv[np.isfinite(yv)]
        if allpos:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        if logy or (logy is None and allpos and len(yv) and np.all(yv > 0) and yv.max() / yv.min() >= 10):
            ax.set_yscale("log")
        if ticks is not None:
            ax.set_xticks(x, ticks, rotation=30, fontsize=7)
        ax.set_xlabel(key, fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _fit_figure(ds, fit_rows, f) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from bolt.sweep.aggregate import groups, xdim_of

    y = f["y"]
    dim, cname = xdim_of(ds, f["x"])
    x, _ = _xvals(ds, cname)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    rows = [r for r in fit_rows if r["y"] == y and r["x"] == f["x"]]
    for i, (label, sub) in enumerate(groups(ds, dim)):
        if i >= _MAX_LINES:
            break
        m, se = _series(sub, dim, y)
        ok = np.isfinite(m) & (m > 0) & (x > 0)
        ax.errorbar(x[ok], m[ok], yerr=np.where(np.isfinite(se), se, 0)[ok], marker="o", ms=3, ls="none",
                    color=f"C{i}", capsize=2)
        r = next((r for r in rows if r["group"] == label), None)
        if r and np.isfinite(r["slope"]):
            lo, hi = f.get("x_min", x[ok].min() if ok.any() else 1), f.get("x_max", x[ok].max() if ok.any() else 1)
            xx = np.geomspace(max(lo, x[x > 0].min()), min(hi, x.max()), 20)
            se_txt = f" ± {r['slope_se']:.2g}" if np.isfinite(r["slope_se"]) else ""
            ax.plot(xx, np.exp(r["intercept"]) * xx ** r["slope"], color=f"C{i}", lw=1,
                    label=f"{label + ': ' if label else ''}slope {r['slope']:.3g}{se_txt}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f["x"], fontsize=8)
    ax.set_ylabel(y, fontsize=8)
    ax.tick_params(labelsize=7)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def sweep_html(spec, ds, fit_rows: list[dict]) -> str:
    """The page as a string (see the module docstring)."""
    esc = html.escape
    status = ds["status"].values.ravel()
    counts = {s: int(np.sum(status == s)) for s in ("done", "skipped", "failed", "interrupted", "missing")}
    title = f"bolt sweep — {spec.path.name if spec.path else 'sweep'}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"]
    if spec.description:
        parts.append(f"<p>{esc(spec.description)}</p>")
    parts.append("<section id='sweep'><h2>Sweep</h2>")
    parts.append(_table([[k, json.dumps(v)] for k, v in {**spec.grid, **spec.zip}.items()]
                        + [["steps", ", ".join(spec.steps)], ["base", str(spec.base or "built-in default problem")],
                           ["points", f"{len(spec.points)}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)]],
                        ["parameter", "values"]))
    parts.append(f"<details><summary>sweep file</summary><pre>{esc(spec.text)}</pre></details></section>")

    failed = [(str(n), str(e)) for n, s, e in zip(ds["point"].values.ravel(), status, ds["error"].values.ravel())
              if s in ("failed", "interrupted", "missing")]
    parts.append("<section id='failed'><h2>Failed points</h2>")
    parts.append(_table(failed, ["point", "error"], warn=[True] * len(failed)) if failed
                 else "<p>None: every point finished.</p>")
    parts.append("</section>")

    if spec.fits:
        parts.append("<section id='fits'><h2>Log-log fits</h2>")
        parts.append(_table([[r["y"], r["x"], r["group"], r["slope"], r["slope_se"], r["n"], r["method"]]
                             for r in fit_rows], ["quantity", "against", "other parameters", "slope", "slope SE",
                                                  "points", "fit"]))
        for f in spec.fits:
            if f["y"] in ds and ds[f["y"]].dtype.kind in "fiu":  # a text quantity has its table row only
                parts.append(_fit_figure(ds, fit_rows, f))
        parts.append("</section>")

    figs, flat = _plotted(ds)
    parts.append("<section id='quantities'><h2>Quantities against the swept parameters</h2>"
                 "<p>One line per setting of the other parameters; seeds pooled into a mean ± its standard "
                 "error (a single replicate shows its own standard error).</p>")
    for t, variables in figs:
        parts.append(f"<h3>{esc(t)}</h3>" + _figure(ds, t, variables, spec.params))
    if flat:
        rows = []
        for k in flat:
            v = ds[k].values
            v = v[np.isfinite(v)]
            rows.append([k, float(v[0]) if len(v) else float("nan")])
        parts.append("<h3>The same at every point</h3>" + _table(rows, ["quantity", "value"]))
    parts.append("</section></body></html>")
    return "\n".join(parts)
