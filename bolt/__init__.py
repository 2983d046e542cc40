"""bolt — the entropy-regularized mean-field theory of two-layer networks, computable.

A two-layer net in the mean-field limit is a measure µ over neuron weights. bolt computes the
minimiser µ* of ``F(µ) = ½R(µ) + (τ/β) KL(µ‖N(0, τI))`` — the Boltzmann fixed point — and
measures it against the theory. Heavy optional modules (matplotlib, arviz, POT) are imported
only where used.
"""

from bolt._version import __version__
from bolt.errors import BoltError, ConfigError, ResultsError
from bolt.estimators.summary import summarize
from bolt.problem import (
    CallableTarget,
    DataInputs,
    DataTarget,
    Field,
    GaussianInputs,
    Linear,
    Problem,
    Realizable,
    SampleInputs,
    Teacher,
    arcsine_kernel,
    custom_activation,
    get_activation,
    load_data,
    make_problem,
)
from bolt.solve import solve

__all__ = [
    "__version__", "BoltError", "ConfigError", "ResultsError",
    "CallableTarget", "DataInputs", "DataTarget", "Field", "GaussianInputs", "Linear", "Problem",
    "Realizable", "SampleInputs", "Teacher", "arcsine_kernel", "custom_activation", "get_activation",
    "load_data", "make_problem", "solve", "summarize",
]
