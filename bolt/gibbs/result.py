"""The result type shared by every fixed-point solver."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bolt.problem.model import Field

__all__ = ["SolveResult"]


@dataclass
class SolveResult:
    """µ* from a solver, with its diagnostics.

    Attributes:
      method: ``"picard-nuts"``, ``"picard-mala"``, ``"mfld"`` or ``"grid"``.
      particles: ``(n, d)`` support points of the final measure: draws of Γ(µ_K) (Picard; MFLD, whose
        interacting particles are refreshed by one MALA chain each) or grid nodes.
      weights: ``(n,)`` their weights (uniform except on the grid).
      field: the :class:`~bolt.problem.Field` of µ_K, whose Gibbs measure Γ(µ_K) the particles represent
        (for MFLD, of its final interacting particles; for the grid, of the final measure itself).
      converged: whether the stopping rule was met before the iteration cap.
      iterations: number of outer iterations (Picard) or blocks (MFLD) run.
      trace: per-iteration arrays (``residual``, ``w2_successive``, ``risk``, ``kl``, ``free_energy``, ...).
      settings: the solver settings used (seed included).
      chains: ``(chain, draw, d)`` draws of the last inner sampling (Picard), else ``None``.
      sample_stats: per-draw sampler statistics ``(chain, draw)`` (Picard), else ``None``.
      compilations: XLA compilations per outer iteration (0 after the first: nothing recompiles).
    """

    method: str
    particles: np.ndarray
    weights: np.ndarray
    field: Field
    converged: bool
    iterations: int
    trace: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    chains: np.ndarray | None = None
    sample_stats: dict | None = None
    compilations: list = field(default_factory=list)

    @property
    def residual(self) -> float:
        """The last value of the stopping residual."""
        r = self.trace.get("residual")
        return float(r[-1]) if r is not None and len(r) else float("nan")

    def mean(self) -> np.ndarray:
        """Mean of µ*."""
        return np.asarray(self.weights @ self.particles)

    def covariance(self) -> np.ndarray:
        """Covariance of µ*."""
        c = self.particles - self.mean()
        return np.asarray((self.weights[:, None] * c).T @ c)
