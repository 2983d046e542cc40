"""``bolt report RUN_DIR`` → a self-contained ``report.html`` (images embedded as base64 PNG).

Sections: problem and settings; fixed-point convergence; marginals of µ* against γ_τ (and a pair
plot for d ≤ 5); the learned function f̂(·; µ*) against f; ArviZ trace and rank plots with the
diagnostics table (warnings highlighted); the bounds table; seed and versions. All text that comes
from the config or the run is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from bolt.errors import ResultsError

__all__ = ["write_report", "build_report"]

SECTIONS = ("problem", "convergence", "marginals", "function", "diagnostics", "bounds", "provenance")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _table(rows, header) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
    body = ""
    for r in rows:
        cls = ' class="warn"' if r and r[-1] == "__warn__" else ""
        cells = r[:-1] if cls else r
        body += f"<tr{cls}>" + "".join(f"<td>{esc(_fmt(c))}</td>" for c in cells) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(x) -> str:
    if isinstance(x, float):
        return "nan" if x != x else f"{x:.5g}"
    return str(x)


def _convergence_fig(trace, tolerance=None):
    import matplotlib.pyplot as plt

    keys = [k for k in ("residual", "free_energy", "risk", "kl") if k in trace]
    tests = [(k, label) for k, label in (("p_value", "KSD test"), ("drift_p_value", "drift test")) if k in trace]
    n = len(keys) + bool(tests)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 2.8))
    axes = np.atleast_1d(axes)
    for ax, k in zip(axes, keys):
        v = np.asarray(trace[k])
        ax.plot(np.arange(1, len(v) + 1), v, "o-", ms=3)
        ax.set_title(k)
        ax.set_xlabel("iteration")
        if k == "residual" and np.all(v[np.isfinite(v)] > 0) and len(v) > 1:
            ax.set_yscale("log")
    if tests:  # the stopping tests' p-values against the level they must reach twice running
        ax = axes[-1]
        for k, label in tests:
            v = np.asarray(trace[k], float)
            ax.plot(np.arange(1, len(v) + 1), np.clip(v, 1e-6, 1.0), "o-", ms=3, label=label)
        if tolerance is not None:
            ax.axhline(float(tolerance), color="k", lw=0.8, ls="--", label=f"tolerance {float(tolerance):g}")
        ax.set_yscale("log")
        ax.set_title("stopping tests (p-value)")
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _marginals_fig(P, w, tau):
    import matplotlib.pyplot as plt

    d = P.shape[1]
    fig, axes = plt.subplots(1, d, figsize=(3.2 * d, 2.8), squeeze=False)
    s = np.sqrt(tau)
    for j, ax in enumerate(axes[0]):
        lo, hi = min(P[:, j].min(), -4 * s), max(P[:, j].max(), 4 * s)
        ax.hist(P[:, j], bins=60, weights=w, density=True, range=(lo, hi), alpha=0.6, label="µ*")
        x = np.linspace(lo, hi, 200)
        ax.plot(x, np.exp(-x**2 / (2 * tau)) / np.sqrt(2 * np.pi * tau), "k--", label="γ_τ")
        ax.set_title(f"w[{j}]")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _pair_fig(P, w, max_points=1500):
    import matplotlib.pyplot as plt

    d = P.shape[1]
    rng = np.random.default_rng(0)
    idx = rng.choice(len(P), size=min(max_points, len(P)), replace=len(P) < max_points, p=w / w.sum())
    Q = P[idx]
    fig, axes = plt.subplots(d, d, figsize=(2.2 * d, 2.2 * d), squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if i == j:
                ax.hist(Q[:, i], bins=40, color="C0", alpha=0.7)
            else:
                ax.scatter(Q[:, j], Q[:, i], s=2, alpha=0.3)
            if i == d - 1:
                ax.set_xlabel(f"w[{j}]")
            if j == 0:
                ax.set_ylabel(f"w[{i}]")
    fig.tight_layout()
    return fig


def _function_fig(problem, P, w):
    import jax.numpy as jnp
    import matplotlib.pyplot as plt

    p = problem.p
    Pj, wj = jnp.asarray(P), jnp.asarray(w)
    if problem.X is not None:
        X = np.asarray(problem.X)
        u = np.linalg.svd(X - X.mean(0), full_matrices=False)[2][0]
        span = 3 * X.std()
    else:
        u = np.zeros(p)
        u[0] = 1.0
        span = 3.0
    if p == 2:
        t = np.linspace(-span, span, 60)
        G = np.stack(np.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
        vals = [np.asarray(problem.fhat(jnp.asarray(G), Pj, wj)), _target_or_none(problem, G)]
        for ax, v, title in zip(axes, vals, ("f̂(·; µ*)", "f")):
            if v is None:
                ax.set_title("f: data labels (no closed form)")
                continue
            cs = ax.contourf(t, t, v.reshape(60, 60), levels=20)
            fig.colorbar(cs, ax=ax)
            ax.set_title(title)
        fig.tight_layout()
        return fig
    t = np.linspace(-span, span, 300)
    X = t[:, None] * u[None, :]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(t, np.asarray(problem.fhat(jnp.asarray(X), Pj, wj)), label="f̂(·; µ*)")
    f = _target_or_none(problem, X)
    if f is not None:
        ax.plot(t, f, "--", label="f")
    ax.set_xlabel("t (x = t·u)" if p > 1 else "x")
    ax.legend()
    fig.tight_layout()
    return fig


def _target_or_none(problem, X):
    import jax.numpy as jnp

    try:
        return np.asarray(problem.target_values(jnp.asarray(X)))
    except Exception:  # noqa: BLE001 — data labels exist only on the data
        return None


def _arviz_figs(idata):
    import arviz as az
    import matplotlib.pyplot as plt

    out = []
    # one density of all chains beside the per-chain traces, and rank plots as lines: with Picard's
    # 40 chains the per-chain densities and stacked rank histograms took 2 s and read as noise
    for axes in (lambda: az.plot_trace(idata, var_names=["w"], compact=False, combined=True),
                 lambda: az.plot_rank(idata, var_names=["w"], kind="vlines")):
        fig = np.asarray(axes()).ravel()[0].figure
        out.append(_png(fig))
        plt.close("all")
    return out


def _diagnostics_html(idata, diag) -> list[str]:
    esc = html.escape
    parts = []
    drows = []
    for r in diag["table"]:
        bad = r["r_hat"] > 1.01 or r["ess_bulk"] < 100 * diag["chains"] or r["ess_tail"] < 100 * diag["chains"]
        row = [r["variable"], r["mean"], r["sd"], r["mcse_mean"], r["ess_bulk"], r["ess_tail"], r["r_hat"]]
        drows.append(row + (["__warn__"] if bad else []))
    warn_html = "".join(f"<li>{esc(x)}</li>" for x in diag["warnings"]) or "<li>none</li>"
    parts.append("<section id='diagnostics'><h2>Sampler diagnostics (ArviZ)</h2>"
                 f"<p>{esc(str(diag['chains']))} chain(s) × {esc(str(diag['draws']))} draws; divergences: "
                 f"{esc(str(diag['divergences']))}; "
                 f"BFMI: {esc(str(diag['bfmi']))}</p><ul class='warn-list'>{warn_html}</ul>"
                 + _table(drows, ["variable", "mean", "sd", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]))
    if diag["draws"] >= 4:
        parts += _arviz_figs(idata)
    parts.append("</section>")
    return parts



CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f2f2f2}tr.warn td{background:#ffe0e0}.warn-list li{color:#a00}img{max-width:100%}
h2{border-bottom:1px solid #ddd;padding-bottom:3px}"""


def _section(build, run_dir: Path, name: str) -> str:
    """A section built from ``NAME.json``/``NAME.nc``; one that lacks a key or holds the wrong type (``[]`` for
    the object ``bolt NAME`` writes) is a one-line error naming the file and the command that rewrites it."""
    try:
        return build(run_dir)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, ResultsError):
            raise
        raise ResultsError(f"report: {run_dir / (name + '.json')} is not what bolt {name} writes "
                           f"({type(exc).__name__}: {' '.join(str(exc).split())[:80]}); write it afresh: "
                           f"bolt {name} {run_dir}") from None


def build_report(run_dir) -> str:
    """Build the report HTML for a run directory (raises :class:`ResultsError` on missing/corrupt files)."""
    import matplotlib

    matplotlib.use("Agg")
    from bolt.config import problem_from_config
    from bolt.diagnostics.summary import diagnose
    from bolt.io import load_bounds, load_measure, load_summary
    from bolt.rundir import check_summary_fits, verify_run_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"report: no run directory at {run_dir}")
    cfg = verify_run_config(run_dir, "report")  # refuses an edited config.toml, a changed/foreign/mixed file
    problem = problem_from_config(cfg)
    summary = check_summary_fits(load_summary(run_dir), problem.d, run_dir / "summary.json")
    P, w, idata = load_measure(run_dir, problem.d)  # finite, (N, d), weights >= 0 summing to 1
    trace = {k: np.asarray(v.values) for k, v in idata.fixed_point.data_vars.items()}
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>bolt report — {esc(str(run_dir.name))}"
             f"</title><style>{CSS}</style></head><body>", f"<h1>bolt report: {esc(str(run_dir))}</h1>"]

    # problem and settings
    prob = summary.get("problem", {})
    rows = [[k, v] for k, v in prob.items()]
    rows += [[f"constant {k}", v] for k, v in summary.get("constants", {}).items()]
    rows += [[f"solver.{k}", v] for k, v in cfg["solver"].items()]
    rows += [[f"problem.target.{k}", v] for k, v in cfg["problem"]["target"].items()]
    parts.append("<section id='problem'><h2>Problem and settings</h2>" + _table(rows, ["key", "value"]))
    head = [["risk R(µ*)", summary["risk"], summary.get("risk_se")],
            ["KL(µ*‖γ_τ)", summary["kl"], summary.get("kl_se")],
            ["log Z", summary["log_z"], summary.get("log_z_se")],
            ["free energy F", summary["free_energy"], summary.get("free_energy_se")],
            ["W2²(µ*, γ_τ)", summary["w2_squared_to_prior"], summary.get("w2_estimator")]]
    parts.append(_table(head, ["quantity", "estimate", "standard error / estimator"]) + "</section>")

    # convergence
    conv = "converged" if summary["converged"] else "NOT converged (iteration cap reached)"
    parts.append(f"<section id='convergence'><h2>Fixed-point convergence</h2><p>{esc(summary['solver'])}: {conv} "
                 f"after {esc(str(summary['iterations']))} iterations, residual "
                 f"{esc(format(float(summary['residual']), '.4g'))}"
                 + (f" (p = {float(summary['residual_p_value']):.2f})" if summary.get("residual_p_value") is not None
                    else "")
                 + (f", drift z = {float(summary['drift_z']):+.2f} (p = {float(summary['drift_p_value']):.2f})"
                    if summary.get("drift_z") is not None else "") + ".</p>"
                 + _png(_convergence_fig(trace, summary.get("config", {}).get("solver", {}).get("tolerance")))
                 + "</section>")

    # marginals
    parts.append("<section id='marginals'><h2>Marginals of µ* against γ_τ</h2>"
                 + _png(_marginals_fig(P, w, problem.tau)))
    if problem.d <= 5:
        parts.append("<h3>Pair plot</h3>" + _png(_pair_fig(P, w)))
    parts.append("</section>")

    # function
    parts.append("<section id='function'><h2>Learned function f̂(·; µ*) against f</h2>"
                 + _png(_function_fig(problem, P, w)) + "</section>")

    # diagnostics
    if summary["solver"] == "grid":
        parts.append("<section id='diagnostics'><h2>Sampler diagnostics (ArviZ)</h2><p>The grid solver is exact "
                     "quadrature: there are no chains to diagnose.</p></section>")
        diag = None
    else:
        diag = diagnose(idata)
    parts += _diagnostics_html(idata, diag) if diag is not None else []

    # bounds
    parts.append("<section id='bounds'><h2>Bounds of the theory (MATH.md §3)</h2>")
    if (run_dir / "bounds.json").is_file():
        brows = []
        for b in load_bounds(run_dir / "bounds.json"):
            outcome = b.get("outcome", "holds" if b.get("holds") else "violated")
            row = [b["name"], b["lhs"], b["rhs"], b["constant"], outcome, b.get("margin_se"), b["lhs_se"],
                   b["rhs_se"], b.get("estimator", ""), b.get("note", "")]
            brows.append(row + (["__warn__"] if outcome in ("violated", "inconclusive") else []))
        parts.append("<p>Verdicts: <b>holds</b>/<b>violated</b> beyond two standard errors, <b>inconclusive</b> "
                     "within them, <b>not informative</b> where the check cannot fail here, <b>rate</b> where the "
                     "theory gives no constant (lhs is the measured ratio to the rate). Sources: docs/bounds.md.</p>")
        parts.append(_table(brows, ["check", "lhs", "rhs", "constant", "verdict", "margin (SE)", "lhs se", "rhs se",
                                    "estimator", "note"]))
    else:
        parts.append("<p>No bounds.json in this run (run <code>bolt bounds RUN_DIR</code>).</p>")
    parts.append("</section>")

    if (run_dir / "bridge.json").is_file():  # the path measure (bolt bridge)
        from bolt.dynamics.report import bridge_section
        parts.append(_section(bridge_section, run_dir, "bridge"))
    if (run_dir / "dynamics.json").is_file():  # SGD / greedy against µ*_t (bolt dynamics)
        from bolt.dynamics.tracking_report import dynamics_section
        parts.append(_section(dynamics_section, run_dir, "dynamics"))
    # provenance
    vers = summary.get("versions", {})
    parts.append("<section id='provenance'><h2>Seed and versions</h2>"
                 + _table([["seed", summary.get("seed")]] + [[k, v] for k, v in vers.items()], ["item", "value"])
                 + "</section></body></html>")
    return "\n".join(parts)


def write_report(run_dir) -> Path:
    """Write ``RUN_DIR/report.html`` atomically and return its path."""
    from bolt.io import atomic_write_text

    out = Path(run_dir) / "report.html"
    atomic_write_text(out, build_report(run_dir))
    return out
