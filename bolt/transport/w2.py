r"""W2² estimators with standard errors: exact OT (POT, float64, host-side), 1-D quantiles, sliced,
Gaussian closed form, split-sample debiased, and the grid measure against γ_τ.

Every function returns a :class:`W2` carrying the estimator's name (MATH.md §5) and a standard
error ``se``.

**Standard errors (first order).** Between two *different* laws P and Q,
``W2²(P, Q) = E_P[u(X)] + E_Q[v(Y)]`` with Kantorovich potentials ``u(x) + v(y) ≤ |x − y|²``
(equality on the support of the optimal plan), and the empirical W2² obeys the CLT

.. math:: \sqrt{n}\,(\widehat{W}_2^2 - W_2^2) \to N\big(0,\ \mathrm{Var}_P(u) + (n/m)\,\mathrm{Var}_Q(v)\big),

so ``se = sqrt(Var_P(u)/n_x + Var_Q(v)/n_y)`` with the potentials evaluated at the samples (POT's
network-simplex duals for exact OT; integrated along the sorted samples, ``u' = 2(x − T(x))``, in
1-D). Weighted samples use ``Σ_i w_i² (u_i − ū)²`` (``= Var(u)/n_eff``, ``n_eff = 1/Σ w_i²``);
correlated draws (MCMC) should pass their effective sample sizes ``ess_x``/``ess_y``.
The first-order term **vanishes when P = Q** (the potentials are constant): there the estimator
fluctuates at second order (``O(1/n)`` in 1-D, ``O(n^{-2/d})`` beyond) and the reported ``se`` is
not a valid error bar. It also ignores the estimator's bias (see :func:`w2_debiased`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bolt.errors import BoltError

__all__ = ["W2", "w2_debiased", "w2_exact", "w2_quantile_1d", "w2_sliced", "w2_gaussian", "w2_squared",
           "w2_grid_to_prior", "w2_to_prior", "check_samples"]

#: POT's exact solver iteration cap; POT's default (1e5) silently returns a non-optimal plan at n ≈ 2000.
NUM_ITER_MAX = 10_000_000

_NAN = float("nan")


class W2(NamedTuple):
    """A W2² value, how it was estimated, (exact OT) the optimal plan, and its standard error.

    Attributes:
      w2_squared: the estimate of W2².
      estimator: which estimator produced it (MATH.md §5).
      plan: the optimal plan (exact OT with ``return_plan=True``), else ``None``.
      se: first-order standard error (``0`` for closed forms and quadrature; ``nan`` when unknown).
    """

    w2_squared: float
    estimator: str
    plan: np.ndarray | None = None
    se: float = _NAN

    @property
    def w2(self) -> float:
        """W2 itself, ``sqrt(max(W2², 0))``."""
        return float(np.sqrt(max(self.w2_squared, 0.0)))


def check_samples(x, name: str, weights=None):
    """Validate a ``(n, d)`` sample set (and optional non-negative weights summing to one)."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise BoltError(f"{name}: expected an (n, d) array, got shape {x.shape}")
    if x.shape[0] == 0:
        raise BoltError(f"{name}: empty sample set")
    if not np.all(np.isfinite(x)):
        raise BoltError(f"{name}: contains NaN or inf")
    if weights is None:
        return x, np.full(x.shape[0], 1.0 / x.shape[0])
    w = np.asarray(weights, np.float64)
    if w.shape != (x.shape[0],):
        raise BoltError(f"{name} weights: expected shape ({x.shape[0]},), got {w.shape}")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise BoltError(f"{name} weights: must be finite and non-negative")
    s = w.sum()
    if s <= 0:
        raise BoltError(f"{name} weights: sum to zero")
    return x, w / s


def _pair(x, y, wx, wy):
    x, wx = check_samples(x, "x", wx)
    y, wy = check_samples(y, "y", wy)
    if x.shape[1] != y.shape[1]:
        raise BoltError(f"samples: dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    return x, y, wx, wy


def _mean_var(u, w, ess=None) -> float:
    """Variance of ``Σ_i w_i u_i`` for iid draws: ``Σ w_i² (u_i − ū)²`` (reliability-corrected), or ``Var_w(u)/ess``."""
    u = np.asarray(u, np.float64)
    ubar = w @ u
    s2 = float(np.sum(w * w))
    if ess is not None:
        var_w = float(w @ (u - ubar) ** 2) / max(1.0 - s2, 1e-300)
        return var_w / float(ess)
    if s2 >= 1.0:  # a single atom: no sampling information
        return _NAN
    return float(np.sum(w * w * (u - ubar) ** 2)) / (1.0 - s2)


def _first_order_se(u, wx, v, wy, ess_x=None, ess_y=None) -> float:
    return float(np.sqrt(_mean_var(u, wx, ess_x) + _mean_var(v, wy, ess_y)))


def _emd(x, y, wx, wy):
    """Exact OT by POT: value, plan and the dual potentials (u, v)."""
    import ot

    M = ot.dist(x, y, metric="sqeuclidean")
    plan, log = ot.emd(wx, wy, M, numItermax=NUM_ITER_MAX, log=True)
    if log.get("result_code", 1) != 1:
        raise BoltError(f"W2: POT's exact solver did not reach an optimum: {log.get('warning')}")
    return float(np.sum(plan * M)), plan, np.asarray(log["u"]), np.asarray(log["v"])


def _quantile(x, y, wx, wy):
    """1-D W2² by the monotone coupling, and Kantorovich potentials at the samples.

    The potentials integrate ``u' = 2(x − T(x))`` along the sorted x (trapezoid rule), ``T(x_i)`` the
    barycentre of the y-mass coupled to ``x_i``; likewise ``v' = 2(y − T⁻¹(y))``.
    """
    ix, iy = np.argsort(x, kind="stable"), np.argsort(y, kind="stable")
    xs, ys, px, py = x[ix], y[iy], wx[ix], wy[iy]
    cx, cy = np.cumsum(px), np.cumsum(py)
    t = np.unique(np.concatenate([[0.0], cx, cy]))
    t = t[t <= 1.0]
    mid = 0.5 * (t[1:] + t[:-1])
    dt = np.diff(t)
    jx = np.minimum(np.searchsorted(cx, mid), len(xs) - 1)
    jy = np.minimum(np.searchsorted(cy, mid), len(ys) - 1)
    val = float(np.sum(dt * (xs[jx] - ys[jy]) ** 2))

    def potential(zs, j_self, j_other, other, n):
        mass = np.bincount(j_self, dt, minlength=n)
        img = np.bincount(j_self, dt * other[j_other], minlength=n)
        ok = mass > 0
        T = np.where(ok, img / np.where(ok, mass, 1.0), zs)  # zero-mass points: no coupling, no weight
        g = zs - T
        return np.concatenate([[0.0], np.cumsum(np.diff(zs) * (g[1:] + g[:-1]))])

    us, vs = potential(xs, jx, jy, ys, len(xs)), potential(ys, jy, jx, xs, len(ys))
    u, v = np.empty_like(us), np.empty_like(vs)
    u[ix], v[iy] = us, vs
    return val, u, v


def w2_exact(x, y, wx=None, wy=None, *, return_plan: bool = False, ess_x: float | None = None,
             ess_y: float | None = None) -> W2:
    r"""Exact W2² between weighted sample sets by POT's network simplex (float64, host-side).

    .. math:: \widehat{W}_2^2 = \min_{P \in \Pi(w_x, w_y)} \sum_{ij} P_{ij} |x_i - y_j|^2
       = \sum_i w_{x,i} u_i + \sum_j w_{y,j} v_j,

    with ``se`` from the dual potentials (module docstring; invalid when the two laws coincide).
    The estimate is biased upwards by the finite-sample transport cost; see :func:`w2_debiased`.

    Args:
      x: ``(n, d)`` samples (or ``(n,)`` in 1-D).
      y: ``(m, d)`` samples.
      wx, wy: optional non-negative weights (normalised here).
      return_plan: keep the ``(n, m)`` plan in the result.
      ess_x, ess_y: effective sample sizes for correlated draws (default ``1/Σ w²``).

    Returns:
      :class:`W2`. Raises :class:`BoltError` when POT reports anything but an optimal solution.

    Example:
      >>> import numpy as np
      >>> r = w2_exact(np.zeros((3, 2)), np.ones((4, 2)))
      >>> round(r.w2_squared, 12), r.se
      (2.0, 0.0)
    """
    x, y, wx, wy = _pair(x, y, wx, wy)
    val, plan, u, v = _emd(x, y, wx, wy)
    return W2(val, "exact OT (POT emd)", plan if return_plan else None, _first_order_se(u, wx, v, wy, ess_x, ess_y))


def w2_quantile_1d(x, y, wx=None, wy=None, *, ess_x: float | None = None, ess_y: float | None = None) -> W2:
    r"""Exact W2² between 1-D (weighted) samples via their quantile functions,
    ``∫_0^1 (F_x^{-1}(t) − F_y^{-1}(t))² dt``, with the first-order ``se`` (module docstring).

    Example:
      >>> import numpy as np
      >>> r = w2_quantile_1d(np.array([0.0, 1.0]), np.array([1.0, 2.0]))
      >>> r.w2_squared, round(r.se, 6)  # a shift: potentials u(x) = −2x, v(y) = 2y + const
      (1.0, 1.414214)
    """
    x, y, wx, wy = _pair(x, y, wx, wy)
    if x.shape[1] != 1:
        raise BoltError("w2_quantile_1d: samples must be 1-D")
    val, u, v = _quantile(x[:, 0], y[:, 0], wx, wy)
    return W2(val, "1-D quantiles", None, _first_order_se(u, wx, v, wy, ess_x, ess_y))


def _ot(x, y, wx, wy):
    """Value and potentials by the exact method for the dimension (quantiles in 1-D, POT otherwise)."""
    if x.shape[1] == 1:
        return _quantile(x[:, 0], y[:, 0], wx, wy)
    val, _, u, v = _emd(x, y, wx, wy)
    return val, u, v


def _solve_all(jobs):
    """``_ot`` of every ``(x, y, wx, wy)`` job, in order; exact solves run on one thread per core
    (POT's network simplex releases the GIL: the result is the same, the wall time ÷ cores), or on
    ``OMP_NUM_THREADS`` threads where that is set (a `bolt sweep` worker sets 1)."""
    import os

    if len(jobs) < 2 or jobs[0][0].shape[1] == 1:  # 1-D quantiles take milliseconds
        return [_ot(*j) for j in jobs]
    from concurrent.futures import ThreadPoolExecutor

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        cores = min(cores, int(os.environ.get("OMP_NUM_THREADS", cores)))
    except ValueError:
        pass
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), cores))) as pool:
        return list(pool.map(lambda j: _ot(*j), jobs))


def w2_sliced(x, y, wx=None, wy=None, *, n_projections: int = 200, seed: int = 0) -> W2:
    r"""Sliced W2²: the mean over random unit directions θ of the 1-D W2² of the projections,

    .. math:: SW_2^2(P, Q) = E_\theta\, W_2^2(\theta_\# P, \theta_\# Q) \le W_2^2(P, Q).

    **A different quantity from W2²** (for an isotropic shift ``N(m, τI)`` vs ``N(0, τI)`` it is
    ``|m|²/d``), never a substitute for it. ``se`` combines the first-order sampling error (the
    per-sample potentials averaged over θ) and the Monte Carlo error over the ``n_projections``
    directions.
    """
    x, y, wx, wy = _pair(x, y, wx, wy)
    if n_projections < 2:
        raise BoltError(f"w2_sliced: n_projections must be >= 2, got {n_projections}")
    rng = np.random.default_rng(seed)
    th = rng.normal(size=(n_projections, x.shape[1]))
    th /= np.linalg.norm(th, axis=1, keepdims=True)
    vals, ubar, vbar = np.empty(n_projections), np.zeros(len(x)), np.zeros(len(y))
    for k, t in enumerate(th):
        vals[k], u, v = _quantile(x @ t, y @ t, wx, wy)
        ubar += u / n_projections
        vbar += v / n_projections
    se = np.sqrt(_mean_var(ubar, wx) + _mean_var(vbar, wy) + vals.var(ddof=1) / n_projections)
    return W2(float(vals.mean()), f"sliced W2^2 ({n_projections} projections; not W2^2)", None, float(se))


def w2_gaussian(mean, cov, tau: float) -> W2:
    """Closed form W2²(N(m, S), N(0, τI)) = |m|² + tr S + dτ − 2√τ tr S^{1/2} (exact: ``se = 0``).

    S and τI commute, so the general Gaussian formula reduces to this for any (anisotropic) S.
    """
    from bolt.closed_forms import gaussian_w2_squared

    return W2(gaussian_w2_squared(mean, cov, tau), "Gaussian closed form", None, 0.0)


def _subsample(rng, x, w, k):
    """``k`` points of ``(x, w)``: without replacement when uniform, by the weights (with replacement) otherwise.

    Returns the points and the variance inflation ``n_eff`` to use: the subsample size, combined with
    the original ``n_eff`` when resampling by weights.
    """
    uniform = np.allclose(w, w[0])
    if uniform:
        idx = rng.choice(len(x), size=k, replace=False)
        return x[idx], float(k)
    idx = rng.choice(len(x), size=k, replace=True, p=w)
    neff = 1.0 / float(np.sum(w * w))
    return x[idx], 1.0 / (1.0 / k + 1.0 / neff)


def w2_debiased(x, y, *, max_exact: int = 1250, seed: int | None = None, ess_x: float | None = None,
                ess_y: float | None = None) -> tuple[W2, float]:
    r"""Split-sample debiased W2² between iid samples: ``cross − self`` over ``2k`` equal groups,

    .. math:: \widehat{W}^2 = \frac{1}{2k}\sum_{g=1}^{2k} W_2^2(x_g, y_g)
                            - \frac{1}{2k}\sum_{j=1}^{k}[W_2^2(x_{2j-1}, x_{2j}) + W_2^2(y_{2j-1}, y_{2j})].

    Empirical W2² is biased upwards by a term that, for nearby laws, is nearly the same for every
    pair of samples of the same sizes; subtracting the within-law W2² at the same group size removes
    it to first order (the idea of the Sinkhorn divergence). The self terms have no first-order
    fluctuation (their potentials are constant at the population level), so the standard error is
    the first-order one of the cross terms, ``se = sqrt(Var(u)/n_x + Var(v)/n_y)`` with the
    potentials of all ``2k`` cross solves (exact OT; quantiles in 1-D). Not valid when the two laws
    coincide (module docstring); the estimate can then be slightly negative.

    Exact OT costs about cubically in the group size and linearly in the number of groups, so the
    draws are split into the fewest groups of at most ``max_exact`` points: every draw is used (the
    first-order error is that of all of them), at a fraction of the cost of two halves. The solves
    run on one thread per core. Against Gaussian closed forms at n = 10⁴ (d = 3 and 10), groups of
    1250 are as unbiased as groups of 2500 (mean z within 0.2), with the same se in d = 3 and 11 %
    more in d = 10, in half the time (studies/benchmarks/bench_w2_groups.py).

    Args:
      x: ``(n, d)`` iid draws of P (n ≥ 4), split in order into ``2k`` consecutive groups (a
        trailing remainder of fewer than ``2k`` draws is dropped).
      y: ``(m, d)`` iid draws of Q (m ≥ 4); the sizes may differ.
      max_exact: the largest group; ``k = ceil(max(n, m) / (2 max_exact))``.
      seed: permute x and y before grouping (default: keep the order, e.g. chains stay in separate groups).
      ess_x, ess_y: effective sample sizes of the full sets for correlated draws (default n, m).

    Returns:
      ``(W2, se)`` with ``W2.se == se``.
    """
    x, _ = check_samples(x, "x")
    y, _ = check_samples(y, "y")
    if x.shape[1] != y.shape[1]:
        raise BoltError(f"samples: dimensions differ ({x.shape[1]} vs {y.shape[1]})")
    if min(len(x), len(y)) < 4:
        raise BoltError("w2_debiased: needs at least 4 samples per set")
    if max_exact < 2:
        raise BoltError(f"w2_debiased: max_exact must be >= 2, got {max_exact}")
    if seed is not None:
        rng = np.random.default_rng(seed)
        x, y = x[rng.permutation(len(x))], y[rng.permutation(len(y))]
    n0, m0 = len(x), len(y)
    k = max(1, min(-(-max(n0, m0) // (2 * max_exact)), min(n0, m0) // 4))
    hx, hy = n0 // (2 * k), m0 // (2 * k)
    ux, uy = np.full(hx, 1.0 / hx), np.full(hy, 1.0 / hy)
    jobs = [(x[g * hx:(g + 1) * hx], y[g * hy:(g + 1) * hy], ux, uy) for g in range(2 * k)]
    jobs += [(z[(2 * j) * h:(2 * j + 1) * h], z[(2 * j + 1) * h:(2 * j + 2) * h], w, w)
             for z, h, w in ((x, hx, ux), (y, hy, uy)) for j in range(k)]
    solved = _solve_all(jobs)
    cross = [c for c, _, _ in solved[:2 * k]]
    us = [u - u.mean() for _, u, _ in solved[:2 * k]]  # each group's potentials are known up to a constant
    vs = [v - v.mean() for _, _, v in solved[:2 * k]]
    selves = [c for c, _, _ in solved[2 * k:]]
    val = float(np.mean(cross)) - float(np.sum(selves)) / (2 * k)
    u, v = np.concatenate(us), np.concatenate(vs)
    nx = 2 * k * hx if ess_x is None else min(float(ess_x) * 2 * k * hx / n0, 2 * k * hx)
    ny = 2 * k * hy if ess_y is None else min(float(ess_y) * 2 * k * hy / m0, 2 * k * hy)
    se = float(np.sqrt(u.var(ddof=2 * k) / nx + v.var(ddof=2 * k) / ny))
    base = "1-D quantiles" if x.shape[1] == 1 else "exact OT (POT emd)"
    note = "" if k == 1 else f"; {2 * k} groups of {hx}"
    return W2(val, f"split-sample debiased ({base}{note})", None, se), se


def w2_squared(x, y, wx=None, wy=None, *, max_exact: int = 5000, seed: int = 0, ess_x: float | None = None,
               ess_y: float | None = None) -> W2:
    """Plain (not debiased) empirical W2² with the exact estimator for the dimension and size.

    1-D: quantiles (any size). d ≥ 2: exact OT (POT) up to ``max_exact`` points per set; above,
    exact OT on a random subsample of ``max_exact`` points of each larger set (uniform sets
    without replacement, weighted sets resampled by their weights), said in the estimator string,
    with the se of the subsample. Never the sliced W2², which is a different quantity
    (:func:`w2_sliced`).
    """
    x, y, wx, wy = _pair(x, y, wx, wy)
    if x.shape[1] == 1:
        return w2_quantile_1d(x, y, wx, wy, ess_x=ess_x, ess_y=ess_y)
    if max(len(x), len(y)) <= max_exact:
        return w2_exact(x, y, wx, wy, ess_x=ess_x, ess_y=ess_y)
    rng = np.random.default_rng(seed)
    parts, notes = [], []
    for z, w, ess, name in ((x, wx, ess_x, "x"), (y, wy, ess_y, "y")):
        if len(z) > max_exact:
            zs, n_sub = _subsample(rng, z, w, max_exact)
            if ess is not None:
                n_sub = 1.0 / (1.0 / max_exact + 1.0 / float(ess))
            parts.append((zs, np.full(max_exact, 1.0 / max_exact), n_sub))
            notes.append(f"{max_exact} of {len(z)} {name}")
        else:
            parts.append((z, w, ess))
    (xs, wxs, ex), (ys, wys, ey) = parts
    r = w2_exact(xs, ys, wxs, wys, ess_x=ex, ess_y=ey)
    return r._replace(estimator=f"exact OT (POT emd) on a random subsample ({', '.join(notes)})")


def _axis_spacing(nodes):
    """Axis coordinates and spacing of a uniform tensor grid given as ``(N, d)`` nodes."""
    axes, hs = [], []
    for k in range(nodes.shape[1]):
        ax = np.unique(nodes[:, k])
        if len(ax) < 3:
            raise BoltError("w2_grid_to_prior: nodes must form a uniform tensor grid with >= 3 points per axis")
        d = np.diff(ax)
        if not np.allclose(d, d[0], rtol=1e-6, atol=0.0):
            raise BoltError("w2_grid_to_prior: nodes must be uniformly spaced")
        axes.append(ax)
        hs.append(float(d.mean()))
    if np.prod([len(a) for a in axes]) != len(nodes):
        raise BoltError("w2_grid_to_prior: nodes must form a full tensor grid")
    return axes, np.array(hs)


def _sinc_cdf_1d(p):
    r"""CDF and survival function at the nodes of the sinc interpolant of a grid density.

    With ``ρ(x) = Σ_g (p_g/h) sinc((x − z_g)/h)``, ``F(z_i) = Σ_g p_g (½ + Si(π(i − g))/π)`` and
    ``S(z_i) = Σ_g p_g (½ − Si(π(i − g))/π)`` exactly; both are discrete convolutions.
    """
    from scipy.signal import fftconvolve
    from scipy.special import sici

    n = len(p)
    j = np.arange(-(n - 1), n, dtype=np.float64)
    si = sici(np.pi * j)[0] / np.pi
    F = fftconvolve(p, 0.5 + si)[n - 1: 2 * n - 1]
    S = fftconvolve(p, 0.5 - si)[n - 1: 2 * n - 1]
    return F, S


def w2_to_prior(key, particles, weights, tau: float, *, grid: bool = False, ess: float | None = None) -> W2:
    """W2²(µ, γ_τ) of a solved µ* with its first-order standard error, never sliced W2²: grid quadrature
    (:func:`w2_grid_to_prior`) when ``grid``, else against as many draws of γ_τ (from ``key``) by 1-D
    quantiles in d = 1 or the split-sample debiased exact OT (:func:`w2_debiased`); ``ess`` is the
    draws' effective sample size (``None`` or not finite: their number)."""
    P = np.asarray(particles, np.float64)
    if grid:
        return w2_grid_to_prior(P, weights, tau, key=key)
    import jax

    prior = np.sqrt(tau) * np.asarray(jax.random.normal(key, P.shape))
    ess = None if ess is None or not np.isfinite(ess) else float(ess)
    return w2_quantile_1d(P, prior, ess_x=ess) if P.shape[1] == 1 else w2_debiased(P, prior, ess_x=ess)[0]


def w2_grid_to_prior(nodes, weights, tau: float, *, key=None, n: int = 1000, reps: int = 16,
                     max_exact: int = 5000) -> W2:
    r"""W2²(µ, γ_τ) for µ given on a uniform tensor grid (e.g. the grid solver's µ*), consistently.

    The grid weights ``p_g ∝ ρ(w_g)`` sample a smooth density ρ; W2² is that of ρ, not of the
    lattice measure (exact OT between µ and the lattice-discretised prior is biased upwards by
    O(h): sub-cell moves cost whole cells).

    - **d = 1**: the monotone map ``T = Φ_τ^{-1} ∘ F_µ`` and the trapezoid rule
      ``W2² = ∫ (w − T(w))² ρ(w) dw ≈ Σ_g p_g (w_g − T(w_g))²``, with ``F_µ`` at the nodes from the
      sinc interpolant of the grid density (exact discrete convolution with ``½ ± Si(πj)/π``) and
      ``Φ_τ`` exact; spectrally accurate for a smooth, Gaussian-tailed ρ; ``se = 0``.
    - **d = 2**: a Gaussian control variate. With N = N(m, S) the Gaussian of the same mean and
      covariance as the piecewise-constant grid density, ``W2²(ρ, γ_τ) = W2²(N, γ_τ) + D``: the
      first term in closed form, ``D`` estimated by the split-sample debiased exact-OT estimator
      (:func:`w2_debiased`) applied to draws of ρ and of N that share their uniforms (the same
      Knothe–Rosenblatt map) and the same γ_τ draws, so that most of the sampling noise cancels
      in the difference; ``reps`` independent replications of ``n`` draws give the standard
      error. When ρ is nearly Gaussian (the theory's claim about µ*) ``D`` is small and its error
      about 30 times smaller than a direct estimate's (0.0004 against 0.011 on a d = 2 erf
      problem). The draws come from the piecewise-constant density (cell jitter), whose W2² differs
      from ρ's by ``≈ (h²/12)(d − E tr ∇T)``; that shift is nearly the same for ρ and for its
      Gaussian, so it cancels in ``D`` (the closed form is taken at ρ's own covariance), leaving
      O(h²) times ρ's departure from a Gaussian.

    Args:
      nodes: ``(N, d)`` nodes of a uniform tensor grid, d ≤ 2.
      weights: ``(N,)`` non-negative masses (normalised here).
      tau: prior variance τ.
      key: JAX PRNG key for the d = 2 draws (default ``PRNGKey(0)``); unused in d = 1.
      n: draws of each law per replication in d = 2.
      reps: replications in d = 2 (their spread is the standard error).
      max_exact: passed to :func:`w2_debiased`.

    Returns:
      :class:`W2` with ``se``.

    Example:
      >>> import numpy as np
      >>> z = np.linspace(-8, 8, 321)
      >>> p = np.exp(-(z - 0.5) ** 2 / 2); p /= p.sum()
      >>> round(w2_grid_to_prior(z[:, None], p, 1.0).w2_squared, 10)
      0.25
    """
    from scipy.special import ndtri

    nodes, p = check_samples(nodes, "nodes", weights)
    if tau <= 0:
        raise BoltError(f"w2_grid_to_prior: tau must be > 0, got {tau}")
    d = nodes.shape[1]
    if d > 2:
        raise BoltError(f"w2_grid_to_prior: grid measures need d <= 2, got d = {d}")
    axes, h = _axis_spacing(nodes)
    if d == 1:
        order = np.argsort(nodes[:, 0])
        z, q = nodes[order, 0], p[order]
        F, S = _sinc_cdf_1d(q)
        tiny = np.finfo(np.float64).tiny
        lower = F <= 0.5
        T = np.sqrt(tau) * np.where(lower, ndtri(np.clip(F, tiny, 0.5)), -ndtri(np.clip(S, tiny, 0.5)))
        val = float(q @ (z - T) ** 2)
        return W2(val, "grid density: monotone map, sinc CDF + trapezoid quadrature", None, 0.0)
    return _w2_grid_2d(nodes, p, axes, h, tau, key, n, reps, max_exact)


def _knothe_rosenblatt_pc(axes, h, P, U):
    """Draws of the piecewise-constant density with cell masses ``P`` (``(n1, n2)`` on ``axes``) by the
    Knothe–Rosenblatt map of uniforms ``U`` ``(n, 2)``: inverse CDF of the first marginal, then of
    the conditional in the column drawn."""
    def inv_cdf(masses, u, lo, step):  # masses (n, k) or (k,) of k cells of width step from lo
        masses = np.broadcast_to(masses, (len(u), masses.shape[-1]))
        c = np.cumsum(masses, -1)
        c = c / c[..., -1:]
        j = np.minimum((c < u[..., None]).sum(-1), masses.shape[-1] - 1)
        prev = np.where(j > 0, np.take_along_axis(c, np.maximum(j - 1, 0)[..., None], -1)[..., 0], 0.0)
        mass = np.take_along_axis(c, j[..., None], -1)[..., 0] - prev
        frac = np.clip((u - prev) / np.where(mass > 0, mass, 1.0), 0.0, 1.0)
        return lo + (j + frac) * step, j

    x1, j1 = inv_cdf(P.sum(1), U[:, 0], axes[0][0] - 0.5 * h[0], h[0])
    x2, _ = inv_cdf(P[j1], U[:, 1], axes[1][0] - 0.5 * h[1], h[1])
    return np.stack([x1, x2], 1)


def _w2_grid_2d(nodes, p, axes, h, tau, key, n, reps, max_exact) -> W2:
    """W2² of a 2-D grid density to γ_τ with a Gaussian control variate (see :func:`w2_grid_to_prior`)."""
    import jax
    from scipy.special import ndtri

    from bolt.closed_forms import gaussian_w2_squared

    key = jax.random.PRNGKey(0) if key is None else key
    order = np.lexsort((nodes[:, 1], nodes[:, 0]))
    P = p[order].reshape(len(axes[0]), len(axes[1]))
    m = p @ nodes
    S_rho = (p[:, None] * (nodes - m)).T @ (nodes - m)  # the smooth density's (spectrally accurate quadrature)
    S = S_rho + np.diag(h**2 / 12.0)  # the piecewise-constant density's: cell jitter adds h²/12
    a = np.sqrt(S[0, 0])
    b, c = S[1, 0] / a, np.sqrt(max(S[1, 1] - S[1, 0] ** 2 / S[0, 0], 0.0))
    diffs = []
    for r in range(reps):
        k1, k2 = jax.random.split(jax.random.fold_in(key, r))
        U = np.clip(np.asarray(jax.random.uniform(k1, (n, 2)), np.float64), 1e-12, 1 - 1e-12)
        x = _knothe_rosenblatt_pc(axes, h, P, U)
        g = ndtri(U)
        xg = np.stack([m[0] + a * g[:, 0], m[1] + b * g[:, 0] + c * g[:, 1]], 1)  # the same map for N(m, S)
        y = np.sqrt(tau) * np.asarray(jax.random.normal(k2, (n, 2)), np.float64)
        diffs.append(w2_debiased(x, y, max_exact=max_exact)[0].w2_squared
                     - w2_debiased(xg, y, max_exact=max_exact)[0].w2_squared)
    diffs = np.asarray(diffs)
    # the cell jitter changes W2² by ≈ (h²/12)(d − E tr ∇T) for ρ and for its Gaussian alike, so it
    # cancels in the difference; the closed form is taken at the smooth density's covariance
    closed = gaussian_w2_squared(m, S_rho, tau)
    return W2(float(closed + diffs.mean()),
              f"grid density: Gaussian closed form + coupled debiased-OT difference ({reps} x {n} draws)", None,
              float(diffs.std(ddof=1) / np.sqrt(reps)))
