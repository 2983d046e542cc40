"""The path measure of µ* (MATH.md §4): Föllmer drift, the controlled SDE, Brownian-bridge paths,
control costs, and the Schrödinger bridge between two marginals.

- :mod:`bolt.dynamics.follmer` — the Föllmer drift (from the potential, from samples) and the value function;
- :mod:`bolt.dynamics.sde` — the controlled SDE (``init``/``build_step`` and one jitted scan per block);
- :mod:`bolt.dynamics.path` — mixtures of Brownian bridges (the path law directly);
- :mod:`bolt.dynamics.costs` — control energy and ``J(u)`` with standard errors;
- :mod:`bolt.dynamics.schrodinger` — entropic OT / the Schrödinger bridge between two particle sets;
- :mod:`bolt.dynamics.gaussian` — the closed forms for Gaussian targets;
- :mod:`bolt.dynamics.sgd` — online SGD on a width-N network, the greedy McKean–Vlasov dynamics and the
  reference flow R(µ*_t); :mod:`bolt.dynamics.tracking` compares them (``bolt dynamics``).

The names below are loaded on first use, so that registering ``bolt bridge`` and ``bolt dynamics`` on the
command line does not import JAX before ``BOLT_PLATFORM`` is applied.
"""

from bolt.lazy import lazy_exports

_LAZY = {
    "bolt.dynamics.costs": ("control_energy", "cost_J", "endpoint_risk"),
    "bolt.dynamics.follmer": ("DriftEstimate", "Potential", "follmer_drift_potential", "follmer_drift_samples",
                              "problem_potential", "value_function"),
    "bolt.dynamics.path": ("bridge_marginal_density", "bridge_marginal_moments", "bridge_paths_from_zero",
                           "brownian_bridge_paths"),
    "bolt.dynamics.schrodinger": ("SchrodingerBridge", "schrodinger_bridge", "sinkhorn_online"),
    "bolt.dynamics.sde": ("SDEResult", "function_drift", "potential_drift", "samples_drift", "simulate", "time_grid"),
    "bolt.dynamics.sgd": ("network_risk", "reference_flow", "run_greedy", "run_sgd"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}
__all__ = [name for names in _LAZY.values() for name in names]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
