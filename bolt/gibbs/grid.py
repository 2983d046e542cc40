r"""Damped Picard iteration on a quadrature grid (d ≤ 2): an exact reference.

µ is a probability vector p on a uniform tensor grid over ``[−L, L]^d``;
Γ(p)_g ∝ exp(−|w_g|²/(2τ) − (β/τ)Ψ(w_g; p)) is computed exactly, and ``p ← (1 − α)p + αΓ(p)``
runs in a jitted ``lax.while_loop`` until ``‖Γ(p) − p‖₁`` reaches the tolerance (round-off in
float64). On a uniform grid the Riemann sum of a smooth, Gaussian-tailed density is spectrally
accurate, so the result is insensitive to refinement (tested) — provided the grid holds the mass.

**Half-width from the problem.** Ψ(w; µ) = E_π[(f̂(X; µ) − f(X)) σ(X; w)], so by Cauchy–Schwarz

.. math:: |\nabla\Psi(w;\mu^*)| \le \sqrt{R(\mu^*)}\,\sqrt{E_\pi|\nabla_w\sigma(X;w)|^2}
          \le \sqrt{R(\gamma_\tau)}\,L_\sigma = \sqrt{\kappa} =: G,

using ``R(µ*) ≤ 2F(µ*) ≤ 2F(γ_τ) = R(γ_τ)`` (``κ`` from :meth:`~bolt.problem.Problem.constants`).
The Gibbs log-density ``−|w|²/(2τ) − (β/τ)Ψ`` then decreases along every ray beyond radius βG at
rate ≥ ``(r − βG)/τ`` (and ``|E_{µ*} W| = β|E ∇Ψ| ≤ βG``), so ``L = extent·√τ + βG`` leaves
mass ``≲ exp(−extent²/2)`` outside. ``L_σ`` is a closed form for erf with Gaussian inputs and a
multistart estimate otherwise, so the bound is backed by an a-posteriori check: the mass within
one prior standard deviation (at least one cell) of the boundary must be ≤ ``boundary_tolerance``;
otherwise the grid is widened ×1.5 at the same spacing (warm start) up to ``max_widenings`` times,
then a :class:`BoltError` names ``solver.grid_points``/``extent``.

**Resolution.** At least ``MIN_POINTS_PER_SD`` nodes per prior standard deviation √τ; if the
requested ``grid_points`` are too few for the half-width, the points are increased (``settings``
records ``grid_points_requested`` and the ``grid_points`` used), up to ``max_points`` per axis.
µ* can be much narrower than the prior (strong tilt): after a solve, if its smallest standard
deviation spans fewer than ``MIN_POINTS_PER_SD`` cells, the spacing is halved and the problem
re-solved (at 1 point per sd the trapezoid error of a Gaussian is ~1e-8, at 2 it is ~e^{-79}).
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from bolt.errors import BoltError
from bolt.gibbs.result import SolveResult
from bolt.problem.model import Problem

__all__ = ["solve_grid", "grid_nodes", "grad_psi_bound"]

#: default points per axis when ``grid_points = 0``
DEFAULT_POINTS = {1: 801, 2: 61}
#: largest grid (points per axis) the solver builds; the arcsine route costs O(N²) per iteration
MAX_POINTS = {1: 20001, 2: 161}
#: minimum nodes per prior standard deviation sqrt(τ)
MIN_POINTS_PER_SD = 2.0


def grad_psi_bound(problem: Problem) -> tuple[float, str]:
    """``G = sqrt(κ) = L_σ sqrt(R(γ_τ)) ≥ sup_w |∇Ψ(w; µ*)|`` and how ``L_σ`` was obtained.

    Exact when ``L_σ`` is a closed form (erf with Gaussian inputs); with an estimated ``L_σ`` it is
    an estimate (the grid's boundary check backs it up).
    """
    c = problem.constants()
    return float(np.sqrt(max(c["kappa"], 0.0))), str(c["L_sigma_squared_method"])


def _axis(half: float, points: int) -> np.ndarray:
    return np.linspace(-half, half, points)


def _mesh(x: np.ndarray, d: int) -> np.ndarray:
    return np.stack(np.meshgrid(*([x] * d), indexing="ij"), -1).reshape(-1, d)


def grid_nodes(problem: Problem, points: int, extent: float = 9.0, *, half_width: float | None = None
               ) -> tuple[np.ndarray, float]:
    """The uniform grid ``(points^d, d)`` over ``[−L, L]^d`` and the cell volume.

    ``L = half_width`` if given, else ``extent·sqrt(τ) + β·G`` with ``G`` from :func:`grad_psi_bound`.
    """
    if problem.d > 2:
        raise BoltError(f"solver.method: the grid solver needs dim <= 2, got dim = {problem.d}")
    if points < 3:
        raise BoltError(f"solver.grid_points: need at least 3 points per axis, got {points}")
    if half_width is None:
        half_width = extent * np.sqrt(problem.tau) + problem.beta * grad_psi_bound(problem)[0]
    x = _axis(half_width, points)
    return _mesh(x, problem.d), (x[1] - x[0]) ** problem.d


def _boundary_mass(nodes: np.ndarray, p: np.ndarray, half: float, margin: float) -> float:
    near = np.max(np.abs(nodes), axis=1) >= half - margin * (1 + 1e-12)
    return float(np.sum(p[near]))


def _min_sd(nodes: np.ndarray, p: np.ndarray) -> float:
    """Smallest standard deviation of the grid measure over directions (sqrt of the least covariance eigenvalue)."""
    mean = p @ nodes
    cov = (p[:, None] * (nodes - mean)).T @ (nodes - mean)
    return float(np.sqrt(max(np.linalg.eigvalsh(cov).min(), 0.0)))


def solve_grid(key, problem: Problem, *, grid_points: int = 0, damping: float = 0.5, tolerance: float = 1e-12,
               max_iterations: int = 2000, extent: float = 9.0, half_width: float | None = None,
               boundary_tolerance: float = 1e-10, max_widenings: int = 4, max_points: int | None = None
               ) -> SolveResult:
    """Solve µ* = Γ(µ*) on a grid (exact up to quadrature and round-off).

    Args:
      key: unused (kept for the common solver signature).
      problem: a problem with ``d <= 2``.
      grid_points: points per axis (0: 801 for d = 1, 61 for d = 2; at least 3). Raised, if needed,
        to keep ``MIN_POINTS_PER_SD`` points per prior standard deviation.
      damping: α.
      tolerance: stop when ``‖Γ(p) − p‖₁`` is below it (use float64 for round-off level).
      max_iterations: cap per solve.
      extent: half-width in prior standard deviations beyond the mean-shift bound βG (module docstring).
      half_width: override the half-width L (the boundary check still applies).
      boundary_tolerance: largest mass allowed within one prior sd of the boundary.
      max_widenings: how often the grid may be widened ×1.5 (and, separately, refined ×2) before giving up.
      max_points: cap on points per axis (default 20001 for d = 1, 161 for d = 2).

    Returns:
      :class:`~bolt.gibbs.result.SolveResult` with the grid nodes as particles and p as weights; its
      trace holds the L1 residual per iteration of the final solve; the settings hold ``log_z``,
      ``boundary_mass``, ``half_width``, ``grid_points`` (used) and ``grid_points_requested``,
      ``points_per_sd``, ``points_per_posterior_sd``, ``widenings``, ``refinements``,
      ``grad_psi_bound``. ``converged`` requires both the residual and the boundary mass below
      their tolerances.

    Raises:
      BoltError: ``d > 2``, ``grid_points`` in {1, 2}, a grid that would exceed ``max_points``,
      boundary mass that remains after ``max_widenings`` widenings, or a µ* still unresolved after
      ``max_widenings`` refinements.
    """
    d = problem.d
    if d > 2:
        raise BoltError(f"solver.method: the grid solver needs dim <= 2, got dim = {d}")
    if grid_points < 0 or 0 < grid_points < 3:
        raise BoltError(f"solver.grid_points: need at least 3 points per axis (or 0 for the default), "
                        f"got {grid_points}")
    max_points = max_points or MAX_POINTS[d]
    t0 = time.time()
    sd = float(np.sqrt(problem.tau))
    g_bound, g_how = grad_psi_bound(problem)
    half = float(half_width) if half_width is not None else extent * sd + problem.beta * g_bound
    if not np.isfinite(half) or half <= 0:
        raise BoltError(f"solver.grid: invalid half-width {half!r}")
    requested = grid_points or DEFAULT_POINTS[d]
    needed = int(math.ceil(2.0 * half * MIN_POINTS_PER_SD / sd)) + 1
    needed += 1 - needed % 2  # odd: the grid contains the origin
    points = max(requested, needed)
    if points > max_points:
        raise BoltError(
            f"solver.grid_points: a half-width of {half:.3g} (extent {extent} prior sd + beta*G = "
            f"{problem.beta * g_bound:.3g}) needs {points} points per axis for {MIN_POINTS_PER_SD} points per "
            f"prior sd, above the cap of {max_points}; use a sampling solver, or pass a smaller extent/half_width")

    log_prior_np = lambda nodes: -np.sum(nodes * nodes, -1) / (2 * problem.tau)
    bt = problem.beta / problem.tau

    p_init, total_iterations, widenings, refinements = None, 0, 0, 0
    while True:
        x = _axis(half, points)
        h = float(x[1] - x[0])
        vol = h**d
        nodes_np = _mesh(x, d)
        nodes = jnp.asarray(nodes_np)
        log_prior = jnp.asarray(log_prior_np(nodes_np))

        def gibbs(p, nodes=nodes, log_prior=log_prior):
            lp = log_prior - bt * problem.psi_field(nodes, problem.field(nodes, p))
            return jax.nn.softmax(lp)

        def cond(c):
            k, _, res, _ = c
            return (k < max_iterations) & (res > tolerance)

        def body(c, gibbs=gibbs):
            k, p, _, hist = c
            g = gibbs(p)
            res = jnp.sum(jnp.abs(g - p))
            return k + 1, (1 - damping) * p + damping * g, res, hist.at[k].set(res)

        p0 = jax.nn.softmax(log_prior) if p_init is None else jnp.asarray(p_init, log_prior.dtype)
        k, p, res, hist = jax.jit(lambda p, body=body: jax.lax.while_loop(
            cond, body, (0, p, jnp.inf, jnp.full((max_iterations,), jnp.nan, p.dtype))))(p0)
        p = gibbs(p)  # report Γ(p): the Gibbs measure of the final iterate
        k = int(k)
        total_iterations += k
        p_np = np.asarray(p)
        margin = max(sd, h)
        bmass = _boundary_mass(nodes_np, p_np, half, margin)
        post_sd = _min_sd(nodes_np, p_np)
        if bmass > boundary_tolerance:
            add = int(math.ceil((points - 1) / 4))  # half-width ×1.5 at the same spacing
            if widenings >= max_widenings or points + 2 * add > max_points:
                raise BoltError(
                    f"solver.grid_points: mass {bmass:.2e} > {boundary_tolerance:.0e} within one prior sd of the grid "
                    f"boundary after {widenings} widenings (half-width {half:.3g}, {points} points per axis, cap "
                    f"{max_points}); µ* reaches beyond the grid: raise extent/half_width (and solver.grid_points), "
                    f"or use a sampling solver")
            widenings += 1
            half = half + add * h
            points = points + 2 * add
            p_init = np.pad(p_np.reshape((points - 2 * add,) * d), add).reshape(-1)
            continue
        if post_sd < MIN_POINTS_PER_SD * h:
            if refinements >= max_widenings or 2 * points - 1 > max_points:
                raise BoltError(
                    f"solver.grid_points: µ* is narrower than the grid resolves ({post_sd / h:.2f} < "
                    f"{MIN_POINTS_PER_SD} points per posterior sd with {points} points per axis over half-width "
                    f"{half:.3g}, cap {max_points}); raise solver.grid_points or pass a smaller extent/half_width")
            refinements += 1
            points = 2 * points - 1  # halve the spacing; restart from the prior
            p_init = None
            continue
        break

    fld = problem.field(nodes, p)
    residual = float(jnp.sum(jnp.abs(gibbs(p) - p)))
    lp = log_prior - bt * problem.psi_field(nodes, fld)
    m = jnp.max(lp)
    # Z = E_γ exp(−(β/τ)Ψ) = Σ_g φ_τ(w_g) e^{−(β/τ)Ψ_g} vol
    log_z = float(m + jnp.log(jnp.sum(jnp.exp(lp - m)) * vol) - 0.5 * d * np.log(2 * np.pi * problem.tau))
    hist = np.asarray(hist)[:k]
    return SolveResult(
        method="grid", particles=nodes_np, weights=p_np, field=fld,
        converged=bool(res <= tolerance) and bmass <= boundary_tolerance,
        iterations=k, trace={"residual": np.append(hist, residual)},
        settings=dict(method="grid", grid_points=points, grid_points_requested=requested, damping=damping,
                      tolerance=tolerance, max_iterations=max_iterations, extent=extent, half_width=half,
                      spacing=h, points_per_sd=sd / h, points_per_posterior_sd=post_sd / h,
                      grad_psi_bound=g_bound, grad_psi_bound_method=g_how, boundary_mass=bmass,
                      boundary_tolerance=boundary_tolerance, widenings=widenings, refinements=refinements,
                      iterations_total=total_iterations, cell_volume=vol, log_z=log_z,
                      runtime_s=time.time() - t0))
