"""Gaussian closed forms against the prior γ_τ = N(0, τI) (MATH.md §1), used by the estimators and
checks (W2 of a Gaussian fit, the oracle inequality) and as references in the tests."""

from __future__ import annotations

import numpy as np

__all__ = ["gaussian_kl", "gaussian_w2_squared"]


def gaussian_kl(mean, cov, tau: float) -> float:
    """KL(N(m, S) ‖ N(0, τI)) = ½[tr S/τ + |m|²/τ − d − log det(S/τ)] (MATH.md §1)."""
    m, S = np.asarray(mean, np.float64), np.atleast_2d(np.asarray(cov, np.float64))
    d = m.shape[0]
    sign, logdet = np.linalg.slogdet(S / tau)
    return 0.5 * (np.trace(S) / tau + m @ m / tau - d - logdet)


def gaussian_w2_squared(mean, cov, tau: float) -> float:
    """W2²(N(m, S), N(0, τI)) = |m|² + tr S + dτ − 2 sqrt(τ) tr S^{1/2} (MATH.md §1)."""
    m, S = np.asarray(mean, np.float64), np.atleast_2d(np.asarray(cov, np.float64))
    ev = np.clip(np.linalg.eigvalsh(S), 0.0, None)
    return float(m @ m + np.trace(S) + m.shape[0] * tau - 2.0 * np.sqrt(tau) * np.sum(np.sqrt(ev)))
