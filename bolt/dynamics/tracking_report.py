"""The "Dynamics against µ*_t" section of ``report.html`` (from ``dynamics.json`` and ``dynamics.nc``)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

__all__ = ["dynamics_section", "trajectory_figure"]


def trajectory_figure(ds):
    """R_N(W_k) of SGD (median and 5–95 % band over repetitions), the greedy curve and R(µ*_t) (± 2 SE)."""
    import matplotlib.pyplot as plt

    t = np.asarray(ds["time"].values)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    ref, ref_se = np.asarray(ds["reference_risk"].values), np.asarray(ds["reference_risk_se"].values)
    for ax, diff in zip(axes, (False, True)):
        base = ref if diff else 0.0
        ax.plot(t, ref - base, "k-", lw=1.5, label="R(µ*_t) (path measure)")
        if np.any(ref_se > 0):
            ax.fill_between(t, ref - base - 2 * ref_se, ref - base + 2 * ref_se, color="k", alpha=0.15, lw=0)
        if "sgd_risk" in ds:
            r = np.asarray(ds["sgd_risk"].values)
            lo, med, hi = np.quantile(r, [0.05, 0.5, 0.95], axis=0)
            ax.fill_between(t, lo - base, hi - base, color="C0", alpha=0.3, lw=0, label="SGD R_N(W_k), 5–95 %")
            ax.plot(t, med - base, color="C0", lw=1.2, label="SGD median")
            ax.plot(t, np.full_like(t, np.median(r[:, 0])) - base, color="C2", ls=":", label="frozen W_k = W_0")
        if "greedy_risk" in ds:
            g = np.asarray(ds["greedy_risk"].values)
            ax.plot(t, np.nanmedian(g, axis=0) - base, color="C3", ls="--", label="greedy McKean–Vlasov (median)")
        ax.set_xlabel("t = kη")
        ax.set_ylabel("risk − R(µ*_t)" if diff else "risk")
    axes[0].legend(fontsize=7)
    axes[0].set_title("risk along the flows")
    axes[1].set_title("difference to the reference flow")
    fig.tight_layout()
    return fig


def dynamics_section(run_dir) -> str:
    """HTML of the dynamics section for a run directory holding ``dynamics.json`` (and ``dynamics.nc``)."""
    from bolt.diagnostics.report import _png, _table
    from bolt.io import load_json

    run_dir = Path(run_dir)
    b = load_json(run_dir / "dynamics.json")
    s = b["settings"]
    esc = html.escape
    parts = ["<section id='dynamics'><h2>Dynamics against the optimal flow µ*_t (MATH.md §4)</h2>",
             f"<p>{esc(str(s['kind']))}: width N = {s['particles']}, {s['steps']} SGD steps of η = "
             f"{s['step_size']:.4g} (horizon nη = {s['horizon']:.4g}), minibatch {s['minibatch']}, "
             f"{s['repetitions']} repetitions; reference R(µ*_t) by {esc(str(s['reference_estimator']))} "
             f"(bolt dynamics).</p>"]
    if (run_dir / "dynamics.nc").is_file():
        import arviz as az

        parts.append(_png(trajectory_figure(az.from_netcdf(run_dir / "dynamics.nc").dynamics)))
    rows = [["max_k |R_N(W_k) − R(µ*_{kη})| (SGD)", b["deviation"], b["deviation_se"]],
            ["same, frozen network W_k = W_0", b["frozen_deviation"], b["frozen_deviation_se"]],
            ["same, greedy McKean–Vlasov", b["greedy_deviation"], b["greedy_deviation_se"]],
            ["R(µ*_t) at t = 0", b["reference_risk_start"], b["reference_risk_start_se"]],
            ["R(µ*_t) at t = 1", b["reference_risk_end"], b["reference_risk_end_se"]],
            ["J(greedy)", b["greedy_J"], b["greedy_J_se"]], ["β·F(µ*)", b["beta_F"], b["beta_F_se"]],
            ["greedy endpoint W2² to µ*", b["greedy_w2_squared"], b["greedy_w2_estimator"]],
            ["two-sample W2² noise", b["greedy_w2_noise"], b["greedy_w2_noise_sd"]]]
    parts.append(_table([r for r in rows if r[1] is not None], ["quantity", "estimate", "standard error"]))
    vrows = []
    for v in b["verdicts"]:
        row = [v["name"], v["lhs"], v["rhs"], v["outcome"], v["margin_se"], v["statement"]]
        vrows.append(row + (["__warn__"] if v["outcome"] == "violated" else []))
    if vrows:
        parts.append(_table(vrows, ["check", "lhs", "rhs", "outcome", "margin (SE)", "statement"]))
    parts.append("</section>")
    return "\n".join(parts)
