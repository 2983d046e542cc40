"""Sampler diagnostics from an ArviZ ``InferenceData`` (R-hat, bulk/tail ESS, MCSE, divergences, BFMI).

Thresholds follow Vehtari et al. (2021): R-hat > 1.01 and bulk or tail ESS below 100 per chain
are warnings; any divergence is a warning.
"""

from __future__ import annotations

import numpy as np

__all__ = ["diagnose", "flag_warnings", "RHAT_MAX", "ESS_PER_CHAIN_MIN"]

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100


def diagnose(idata, var_names=("w", "psi", "w_norm_sq")) -> dict:
    """Diagnostics of the posterior group.

    Returns a dict with ``table`` (rows: variable/coordinate with ``mean``, ``sd``, ``mcse_mean``,
    ``ess_bulk``, ``ess_tail``, ``r_hat``), ``divergences``, ``bfmi`` (per chain, NUTS only),
    ``chains``, ``draws`` and ``warnings`` (human-readable strings).
    """
    import arviz as az

    post = idata.posterior
    names = [v for v in var_names if v in post.data_vars]
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    rows = []
    if chains * draws >= 4 and draws >= 4:
        summ = az.summary(idata, var_names=names, kind="all", round_to="none")
        for label, r in summ.iterrows():
            rows.append({"variable": str(label), "mean": float(r["mean"]), "sd": float(r["sd"]),
                         "mcse_mean": float(r["mcse_mean"]), "ess_bulk": float(r["ess_bulk"]),
                         "ess_tail": float(r["ess_tail"]), "r_hat": float(r["r_hat"])})
    divergences = 0
    bfmi = None
    ss = getattr(idata, "sample_stats", None)
    if ss is not None:
        if "diverging" in ss:
            divergences = int(np.asarray(ss["diverging"]).sum())
        if "energy" in ss:
            bfmi = [float(x) for x in az.bfmi(idata)]
    out = {"table": rows, "divergences": divergences, "bfmi": bfmi, "chains": int(chains), "draws": int(draws)}
    out["warnings"] = flag_warnings(out)
    return out


def flag_warnings(diag: dict) -> list[str]:
    """Human-readable warnings for a :func:`diagnose` result."""
    warns = []
    chains = diag["chains"]
    for r in diag["table"]:
        if chains > 1 and np.isfinite(r["r_hat"]) and r["r_hat"] > RHAT_MAX:
            warns.append(f"R-hat of {r['variable']} is {r['r_hat']:.3f} > {RHAT_MAX}: chains disagree")
        low = ESS_PER_CHAIN_MIN * chains
        if r["ess_bulk"] < low or r["ess_tail"] < low:
            warns.append(f"ESS of {r['variable']} is low (bulk {r['ess_bulk']:.0f}, tail {r['ess_tail']:.0f} "
                         f"< {low})")
    if diag["divergences"]:
        warns.append(f"{diag['divergences']} divergent transitions")
    if diag["bfmi"] is not None and min(diag["bfmi"]) < 0.3:
        warns.append(f"low BFMI ({min(diag['bfmi']):.2f} < 0.3): poor exploration of the energy")
    return warns
