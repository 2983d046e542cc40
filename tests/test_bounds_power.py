"""Power of the bounds and of their error bars (issue 25): the U-statistic risk's SE, the oracle check's two
sides, the realizable check's right side for units without a closed form, and the corollary's map noise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bolt
from bolt.problem import Field


@pytest.mark.statistical
def test_risk_se_counts_the_degenerate_variance_once():
    """Linear unit σ = ⟨w, x⟩, f = ⟨a, x⟩, draws w ∼ ν = N(a + δ, C): Ψ(w; ν) = wᵀΣ̂δ, and the U-statistic R̂ has
    Var R̂ = 4 Var Ψ/n + 2 tr((Σ̂C)²)/(n(n − 1)) exactly (first-order and degenerate terms; MATH.md §3). δ is
    chosen so that the first-order term is twice the degenerate one; summarize's risk_se² must match Var R̂ on
    average over 30 draw sets (the field is the exact f̂ = ⟨a, x⟩, so the control variates and the field noise
    are 0). Counting the degenerate term three times gives a ratio of 5/3; the tolerance is 4 SE of the mean
    ratio, measured from the replications (per-set sd ≈ 0.3), and that SE must resolve 5/3 from 1."""
    from bolt.estimators.summary import summarize
    from bolt.gibbs.result import SolveResult
    from bolt.problem.activations import custom_activation

    d, n, reps = 20, 400, 30
    a = np.linspace(0.5, -0.4, d)
    linear = custom_activation(lambda x, w: x @ w, "linear")
    pb = bolt.make_problem(linear, bolt.Linear(a), beta=1.0, tau=0.5, inputs=bolt.SampleInputs(samples=512))
    X = np.asarray(pb.X)
    S = X.T @ X / len(X)
    C = 0.3 * np.eye(d)
    T = np.trace(S @ C @ S @ C)
    u = np.ones(d)
    delta = u * np.sqrt(T / n / (u @ S @ C @ S @ u))  # Var Ψ = δᵀΣ̂CΣ̂δ = T/n
    want = 4 * (delta @ S @ C @ S @ delta) / n + 2 * T / (n * (n - 1))
    fld = Field(jnp.zeros((0, d)), jnp.zeros((0,)), jnp.asarray(X @ a))
    L = np.linalg.cholesky(C)
    ratios, risks = [], []
    for r in range(reps):
        x = a + delta + np.random.default_rng(500 + r).standard_normal((n, d)) @ L.T
        s = summarize(jax.random.PRNGKey(r), pb, SolveResult("iid", x, np.full(n, 1 / n), fld, True, 1),
                      logz_samples=2000, w2=False)
        ratios.append(s["risk_se"] ** 2 / want)
        risks.append(s["risk"])
    m, se = np.mean(ratios), np.std(ratios, ddof=1) / np.sqrt(reps)
    assert abs(m - 1) < 4 * se and se < 2 / 3 / 8, (m, se)
    # the variance it states is the one the risks show: R(ν) = |Σ̂^{1/2}δ|² (f̂_ν = ⟨a + δ, x⟩)
    z = (np.asarray(risks) - delta @ S @ delta) / np.sqrt(want)
    assert abs(np.mean(z**2) - 1) < 4 * np.sqrt(2 / reps), np.mean(z**2)
