"""Rows split across devices: a 1-D mesh of ``jax.devices()`` and a ``NamedSharding`` of the row axis.

MFLD's particles ``(N, d)`` and Picard's vectorised chains ``(chains, …)`` are independent along
their first axis except through the field; splitting that axis over devices and leaving the rest
to XLA's SPMD partitioner keeps the maths unchanged: where a row needs every other row (the
interaction ∫K(w, v) µ̂(dv) on the arcsine route, or the sum f̂(X; µ̂) = Σ_i a_i σ(X; w_i) on the
expectation route), XLA inserts the all-gather or all-reduce itself. A sharded run therefore
equals the one-device run to float round-off (the order of a few sums changes).

``devices = 1`` (the default) returns no sharding at all, so a one-device run is exactly the code
path it always was.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bolt.errors import BoltError

__all__ = ["row_sharding", "shard_rows", "constrain_rows"]

AXIS = "rows"


def row_sharding(devices: int, rows: int, *, what: str = "solver.particles") -> NamedSharding | None:
    """A ``NamedSharding`` that splits axis 0 of an array over ``devices`` devices, or ``None``.

    Args:
      devices: how many of ``jax.devices()`` to use: 0 means all of them, 1 means no sharding
        (returns ``None``), ``n > 1`` the first ``n`` (an error if fewer are available).
      rows: length of the split axis; it must be a multiple of the device count, so every device
        holds the same number of rows.
      what: the config key that sets ``rows`` (for the error message).

    Returns:
      ``NamedSharding(Mesh(devs, ("rows",)), PartitionSpec("rows"))`` or ``None`` for one device.

    Example:
      >>> row_sharding(1, 2000) is None
      True
    """
    devs = jax.devices()
    if devices < 0:
        raise BoltError(f"solver.devices: must be >= 0 (0: all available), got {devices}")
    n = len(devs) if devices == 0 else devices
    if n > len(devs):
        raise BoltError(f"solver.devices: {devices} requested but only {len(devs)} "
                        f"{devs[0].platform} device(s) are available")
    if n == 1:
        return None
    if rows % n:
        raise BoltError(f"{what}: {rows} is not a multiple of the {n} devices it is split over (solver.devices)")
    return NamedSharding(Mesh(np.asarray(devs[:n]), (AXIS,)), PartitionSpec(AXIS))


def shard_rows(x, sharding: NamedSharding | None):
    """Place ``x`` (axis 0 split) on ``sharding``'s devices; unchanged when ``sharding`` is ``None``."""
    return x if sharding is None else jax.device_put(x, sharding)


def constrain_rows(x, sharding: NamedSharding | None):
    """Inside ``jit``: keep ``x``'s axis 0 split over ``sharding`` (a no-op for ``None``)."""
    return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)
