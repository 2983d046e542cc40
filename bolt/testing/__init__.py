"""Statistical asserts and exact reference draws for the tests (the Gaussian closed forms bolt itself
uses are in :mod:`bolt.closed_forms`).

Tolerances are ``k`` standard errors (CLT), never tuned to a seed (STYLE.md §5).
"""

from __future__ import annotations

import numpy as np

__all__ = ["mean_and_se", "assert_close_z", "assert_mean_close", "loglog_slope", "exact_gibbs_draws",
           "ar1_chains"]


def mean_and_se(x, axis: int = 0):
    """Sample mean and its standard error ``std / sqrt(n)`` along ``axis`` (float64)."""
    x = np.asarray(x, np.float64)
    n = x.shape[axis]
    return x.mean(axis), x.std(axis, ddof=1) / np.sqrt(n)


def assert_close_z(estimate, expected, se, k_sigma: float = 5.0, what: str = "value"):
    """Assert ``|estimate − expected| < k_sigma · se`` elementwise."""
    estimate, expected, se = (np.asarray(a, np.float64) for a in (estimate, expected, se))
    z = np.abs(estimate - expected) / np.maximum(se, 1e-300)
    assert np.all(z < k_sigma), (f"{what}: max |z| = {np.max(z):.2f} >= {k_sigma} "
                                 f"(estimate {estimate}, expected {expected}, se {se})")


def assert_mean_close(draws, expected, k_sigma: float = 5.0, what: str = "mean"):
    """Assert the sample mean of iid ``draws`` (axis 0) is within ``k_sigma`` SE of ``expected``."""
    m, se = mean_and_se(draws)
    assert_close_z(m, expected, se, k_sigma, what)


def loglog_slope(x, y) -> tuple[float, float]:
    """Least-squares slope of ``log y`` against ``log x`` and its standard error."""
    lx, ly = np.log(np.asarray(x, np.float64)), np.log(np.asarray(y, np.float64))
    A = np.stack([lx, np.ones_like(lx)], 1)
    coef, res, *_ = np.linalg.lstsq(A, ly, rcond=None)
    n = len(lx)
    resid = ly - A @ coef
    s2 = resid @ resid / max(n - 2, 1)
    cov = s2 * np.linalg.inv(A.T @ A)
    return float(coef[0]), float(np.sqrt(cov[0, 0]))


def exact_gibbs_draws(rng, problem, fld, n: int, psi_min: float) -> np.ndarray:
    """Exact iid draws ``(n, d)`` of Γ(µ) ∝ γ_τ e^{−(β/τ)Ψ(·; µ)} by rejection from γ_τ.

    A proposal ``w ~ γ_τ`` is accepted with probability ``exp(−(β/τ)(Ψ(w; µ) − psi_min))``, which
    needs ``psi_min ≤ inf Ψ`` (e.g. the minimum over a fine grid). For tests in low dimension.
    """
    bt = problem.beta / problem.tau
    out, have = [], 0
    while have < n:
        w = np.sqrt(problem.tau) * rng.normal(size=(4 * n, problem.d))
        acc = rng.random(4 * n) < np.exp(-bt * (np.asarray(problem.psi_field(w, fld)) - psi_min))
        out.append(w[acc])
        have += int(acc.sum())
    return np.concatenate(out)[:n]


def ar1_chains(rng, rho: float, chains: int, draws: int, shift=None) -> np.ndarray:
    """Stationary AR(1) chains ``(chains, draws)`` with unit marginal variance and lag-t correlation
    ``rho**t`` (integrated autocorrelation time ``(1 + rho)/(1 − rho)``), each moved by ``shift[c]``."""
    x = np.zeros((chains, draws))
    e = rng.normal(size=(chains, draws)) * np.sqrt(1 - rho**2)
    x[:, 0] = rng.normal(size=chains)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    return x if shift is None else x + np.asarray(shift)[:, None]
