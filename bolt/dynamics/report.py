"""The "Path measure" section of ``report.html`` (from ``bridge.json`` and ``bridge.nc``)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

__all__ = ["bridge_section"]


def _fan_fig(ds, max_paths: int = 60):
    import matplotlib.pyplot as plt

    t = np.asarray(ds["time"].values)
    paths = np.asarray(ds["paths"].values)[:, :, 0]
    bridge = np.asarray(ds["bridge_paths"].values)[:, :, 0]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.0))
    ax = axes[0]
    for p in paths[:max_paths]:
        ax.plot(t, p, lw=0.6, alpha=0.5, color="C0")
    q = np.quantile(paths, [0.05, 0.5, 0.95], axis=0)
    ax.plot(t, q.T, "k--", lw=1)
    ax.set_title("SDE paths (w[0]) and 5/50/95 % bands")
    ax.set_xlabel("t")
    ax = axes[1]
    for j, s in enumerate(range(2, len(t), 2)):
        lo, hi = np.quantile(np.concatenate([paths[:, s], bridge[:, s]]), [0.005, 0.995])
        ax.hist(paths[:, s], bins=40, range=(lo, hi), density=True, histtype="step", color=f"C{j}",
                label=f"SDE t={t[s]:g}")
        ax.hist(bridge[:, s], bins=40, range=(lo, hi), density=True, histtype="step", ls="--", color=f"C{j}")
    ax.set_title("marginals: SDE (solid) vs bridge mixture (dashed)")
    ax.legend(fontsize=7)
    ax = axes[2]
    st = np.asarray(ds["step_time"].values)
    ess = np.asarray(ds["ess_mean"].values)
    if np.all(np.isfinite(ess)):
        ax.plot(st, ess, label="mean")
        ax.plot(st, np.asarray(ds["ess_min"].values), label="min")
        ax.legend(fontsize=7)
    ax.set_title("drift estimator ESS over t")
    ax.set_xlabel("t")
    fig.tight_layout()
    return fig


def bridge_section(run_dir) -> str:
    """HTML of the path-measure section for a run directory holding ``bridge.json`` (and ``bridge.nc``)."""
    from bolt.diagnostics.report import _png, _table
    from bolt.io import load_json

    run_dir = Path(run_dir)
    b = load_json(run_dir / "bridge.json")
    s = b["settings"]
    esc = html.escape
    parts = ["<section id='bridge'><h2>Path measure (MATH.md §4)</h2>",
             f"<p>Controlled SDE from 0 with the {esc(str(s['drift']))} Föllmer drift of µ*: "
             f"{esc(str(s['particles']))} paths, {esc(str(s['steps_total']))} steps (bolt bridge).</p>"]
    if (run_dir / "bridge.nc").is_file():
        import arviz as az

        parts.append(_png(_fan_fig(az.from_netcdf(run_dir / "bridge.nc").bridge)))
    rows = [["control energy ½E∫|u|²", b["control_energy"], b["control_energy_se"]],
            ["τ·KL(µ*‖γ_τ)", b["tau_kl"], b["tau_kl_se"]],
            ["J(Föllmer)", b["J"], b["J_se"]], ["β·F(µ*)", b["beta_F"], b["beta_F_se"]],
            ["J(zero control)", b["J_zero_control"], 0.0], ["J(greedy)", b["J_greedy"], b["J_greedy_se"]],
            ["endpoint W2²", b["endpoint_w2_squared"], b["endpoint_w2_estimator"]],
            ["two-sample W2² noise", b["endpoint_w2_noise"], b["endpoint_w2_noise_sd"]]]
    parts.append(_table(rows, ["quantity", "estimate", "standard error"]))
    vrows = []
    for v in b["verdicts"]:
        row = [v["name"], v["lhs"], v["rhs"], v["outcome"], v["margin_se"], v["statement"]]
        vrows.append(row + (["__warn__"] if v["outcome"] == "violated" else []))
    parts.append(_table(vrows, ["check", "lhs", "rhs", "outcome", "margin (SE)", "statement"]))
    if b.get("control_energy_note"):
        parts.append(f"<p>{esc(b['control_energy_note'])}</p>")
    parts.append("</section>")
    return "\n".join(parts)
