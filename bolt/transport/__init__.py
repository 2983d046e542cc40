"""Optimal transport: W2 estimators (POT, host-side), transport maps, Schrödinger bridges."""

from bolt.transport.maps import barycentric_map, entropic_map, lazy_training, monotone_map_1d, ot_assignment
from bolt.transport.w2 import (
    W2,
    w2_debiased,
    w2_exact,
    w2_gaussian,
    w2_grid_to_prior,
    w2_quantile_1d,
    w2_sliced,
    w2_squared,
)

__all__ = [
    "barycentric_map", "entropic_map", "lazy_training", "monotone_map_1d", "ot_assignment",
    "W2", "w2_debiased", "w2_exact", "w2_gaussian", "w2_grid_to_prior", "w2_quantile_1d", "w2_sliced", "w2_squared",
]
