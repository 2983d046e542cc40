"""Bounded-memory evaluation helpers: row chunking with ``lax.map`` and column sums with ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

#: Default cap on the number of entries of any intermediate (rows × columns) block.
MAX_BLOCK_ELEMENTS = 1 << 22


def block_size(other: int, max_elements: int = MAX_BLOCK_ELEMENTS) -> int:
    """Rows per block so that ``rows * other <= max_elements`` (at least 1)."""
    return max(1, int(max_elements) // max(1, int(other)))


def map_rows(fn: Callable[[Array], Array], rows: Array, chunk: int) -> Array:
    """Apply ``fn`` to ``rows`` (n, ...) in blocks of ``chunk`` rows and concatenate.

    ``fn`` maps a ``(c, ...)`` block to ``(c, ...)``. When ``n <= chunk`` this is a single call;
    otherwise rows are zero-padded to a multiple of ``chunk`` and looped with ``lax.map`` so only
    one block is alive at a time.
    """
    n = rows.shape[0]
    if n <= chunk:
        return fn(rows)
    n_blocks = -(-n // chunk)
    pad = n_blocks * chunk - n
    padded = jnp.concatenate([rows, jnp.zeros((pad,) + rows.shape[1:], rows.dtype)], axis=0)
    out = jax.lax.map(fn, padded.reshape((n_blocks, chunk) + rows.shape[1:]))
    out = out.reshape((n_blocks * chunk,) + out.shape[2:])
    return out[:n]


def sum_over_rows(fn: Callable[[Array, Array], Array], rows: Array, weights: Array, chunk: int) -> Array:
    """``Σ_blocks fn(rows_block, weights_block)`` with ``lax.scan`` (zero-weight padding).

    ``fn`` must be linear in the weights so that zero-weight padding rows contribute nothing.
    """
    n = rows.shape[0]
    if n <= chunk:
        return fn(rows, weights)
    n_blocks = -(-n // chunk)
    pad = n_blocks * chunk - n
    rows_p = jnp.concatenate([rows, jnp.zeros((pad,) + rows.shape[1:], rows.dtype)], axis=0)
    w_p = jnp.concatenate([weights, jnp.zeros((pad,), weights.dtype)])
    rows_p = rows_p.reshape((n_blocks, chunk) + rows.shape[1:])
    w_p = w_p.reshape((n_blocks, chunk))
    first = fn(rows_p[0], w_p[0])

    def body(acc, block):
        r, w = block
        return acc + fn(r, w), None

    acc, _ = jax.lax.scan(body, first, (rows_p[1:], w_p[1:]))
    return acc
