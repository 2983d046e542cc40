"""The two-layer mean-field problem: units σ, input laws π, targets f, and Ψ, ∇Ψ, R, F."""

from bolt.problem.activations import ACTIVATIONS, Activation, custom_activation, get_activation
from bolt.problem.kernels import arcsine_kernel, arcsine_kernel_diag, arcsine_kernel_grad
from bolt.problem.model import Field, Problem, make_problem, uniform_weights
from bolt.problem.spec import (
    CallableTarget,
    DataInputs,
    DataTarget,
    GaussianInputs,
    Linear,
    Realizable,
    SampleInputs,
    Teacher,
    load_data,
)

__all__ = [
    "ACTIVATIONS", "Activation", "custom_activation", "get_activation",
    "arcsine_kernel", "arcsine_kernel_diag", "arcsine_kernel_grad",
    "Field", "Problem", "make_problem", "uniform_weights",
    "CallableTarget", "DataInputs", "DataTarget", "GaussianInputs", "Linear", "Realizable",
    "SampleInputs", "Teacher", "load_data",
]
