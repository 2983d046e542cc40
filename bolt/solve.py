"""One entry point for every fixed-point solver: :func:`solve`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bolt.errors import BoltError

if TYPE_CHECKING:  # JAX is imported on the first solve, so that `import bolt` leaves the platform unset
    from bolt.gibbs.result import SolveResult
    from bolt.problem.model import Problem

__all__ = ["solve", "METHODS"]

METHODS = ("picard-nuts", "picard-mala", "mfld", "grid")


def solve(problem: Problem, method: str = "picard-nuts", *, seed: int = 0, key=None, **settings) -> SolveResult:
    """Compute µ* with the chosen method.

    Args:
      problem: the problem.
      method: ``"picard-nuts"``, ``"picard-mala"``, ``"mfld"`` or ``"grid"``.
      seed: seed of the PRNG key (ignored when ``key`` is given).
      key: a JAX PRNG key.
      **settings: solver settings (see :func:`~bolt.gibbs.picard.solve_picard`,
        :func:`~bolt.gibbs.mfld.solve_mfld`, :func:`~bolt.gibbs.grid.solve_grid`).

    Example:
      >>> import bolt
      >>> pb = bolt.make_problem("erf", bolt.Teacher([[1.5]]), beta=1.0, tau=0.5)
      >>> res = solve(pb, "grid")
      >>> res.converged
      True
    """
    import jax

    key = jax.random.PRNGKey(seed) if key is None else key
    if method in ("picard-nuts", "picard-mala"):
        from bolt.gibbs.picard import solve_picard

        res = solve_picard(key, problem, inner=method.split("-")[1], **settings)
    elif method == "mfld":
        from bolt.gibbs.mfld import solve_mfld

        res = solve_mfld(key, problem, **settings)
    elif method == "grid":
        from bolt.gibbs.grid import solve_grid

        res = solve_grid(key, problem, **settings)
    else:
        raise BoltError(f"solver.method: unknown method {method!r}; expected one of {list(METHODS)}")
    res.settings["seed"] = seed
    return res
