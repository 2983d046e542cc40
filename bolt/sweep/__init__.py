"""Sampling studies at scale: ``bolt sweep`` runs a grid of configs on Dask and aggregates them.

See docs/sweep.md. The pieces: :func:`load_sweep` (parse and validate a sweep file into points),
:func:`run_sweep` (run the points, one ordinary run directory each, on a Dask cluster or in a plain
loop) and :func:`write_aggregates` (``sweep.nc``, ``sweep.csv``, ``sweep.html``). Dask, xarray and
matplotlib are imported only when used.
"""

from bolt.sweep.aggregate import build_dataset, loglog_fit, point_quantities, write_aggregates
from bolt.sweep.runner import SweepOutcome, run_point, run_sweep
from bolt.sweep.spec import Point, SweepSpec, load_sweep, parse_sweep

__all__ = ["load_sweep", "parse_sweep", "SweepSpec", "Point", "run_sweep", "run_point", "SweepOutcome",
           "write_aggregates", "build_dataset", "point_quantities", "loglog_fit"]
