"""bolt — the entropy-regularized mean-field theory of two-layer networks, computable.

A two-layer net in the mean-field limit is a measure µ over neuron weights. bolt computes the
minimiser µ* of ``F(µ) = ½R(µ) + (τ/β) KL(µ‖N(0, τI))`` — the Boltzmann fixed point — and
measures it against the theory. Heavy optional modules (matplotlib, arviz, POT) are imported
only where used, and so is JAX: the names below that need it are loaded on first use
(``bolt.make_problem`` imports :mod:`bolt.problem`), so that ``import bolt`` leaves JAX's platform
unset and the ``bolt`` command can apply ``BOLT_PLATFORM`` before JAX starts.
"""

from bolt._version import __version__
from bolt.errors import BoltError, ConfigError, ResultsError
from bolt.lazy import lazy_exports
from bolt.solve import solve  # JAX-free until called

_LAZY = {
    "summarize": "bolt.estimators.summary",
    **{name: "bolt.problem" for name in (
        "CallableTarget", "DataInputs", "DataTarget", "Field", "GaussianInputs", "Linear", "Problem",
        "Realizable", "SampleInputs", "Teacher", "arcsine_kernel", "custom_activation", "get_activation",
        "load_data", "make_problem")},
}

__all__ = [
    "__version__", "BoltError", "ConfigError", "ResultsError",
    "CallableTarget", "DataInputs", "DataTarget", "Field", "GaussianInputs", "Linear", "Problem",
    "Realizable", "SampleInputs", "Teacher", "arcsine_kernel", "custom_activation", "get_activation",
    "load_data", "make_problem", "solve", "summarize",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
