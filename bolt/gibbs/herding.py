"""Kernel herding of a field: a small equal-weight support with the same Ψ (issue: speed, target 4).

Ψ(w; µ) = f̃(w) + ∫K(w, v) µ(dv) is linear in µ, so a measure ν with a small maximum mean
discrepancy to µ *in the RKHS of K itself* has the same Ψ everywhere:

.. math:: |Ψ(w; ν) − Ψ(w; µ)| \\le \\sqrt{K(w, w)}\\; \\mathrm{MMD}_K(ν, µ).

Kernel herding (Chen, Welling & Smola 2010; Frank–Wolfe on the MMD, Bach et al. 2012) picks the
points of ν greedily from µ's own support, ``x_{t+1} = argmax_x [µK(x) − (1/(t+1)) Σ_{s≤t} K(x, x_s)]``,
and its MMD falls like 1/m rather than the 1/√m of a random subsample. The Picard buffer (four
blocks of draws, 8000 points by default) is itself a Monte Carlo estimate of µ_k, with an MMD to
µ_k of about ``sqrt((E K(w,w) − ∫∫K) / n_eff)``; herding it to ``m`` points costs nothing in
accuracy while the herding error stays well below that noise, and every kernel sum — each
sampler gradient, the log Z proposals, the summaries — costs ``m`` instead of ``n`` per point.
:func:`herd_field` returns the ratio ``MMD_K(ν, µ) / noise`` so that this is checked, not assumed
(it is in the solver's trace as ``field_mmd_ratio``; ~0.2 at m = 1000 on the default problem,
studies/benchmarks/bench_field.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bolt._chunk import block_size, map_rows
from bolt.problem.model import Field, Problem, problem_jit

__all__ = ["herd_field", "block_gram", "update_block_gram"]


def block_gram(problem: Problem, fld: Field, blocks: int) -> jax.Array:
    """``G[i, b] = Σ_{j ∈ block b} r_j K(x_i, x_j)`` for a field of ``blocks`` equal-sized blocks of atoms,
    ``r_j`` the atom's weight relative to its block's mean weight (1 for equal weights).

    With the block weights ``A_b`` (the sums of its atoms' weights, as :meth:`~bolt.problem.Problem.mix`
    keeps Picard's buffer), ``µK(x_i) = Σ_b (A_b/n) G[i, b]``: the kernel sums herding needs. This is
    the full ``n² `` pass; :func:`update_block_gram` keeps ``G`` current after each mix at a
    ``1/blocks`` of its cost.
    """
    X = fld.particles
    n = X.shape[0] // int(blocks)
    return _block_gram(problem, X, _relative_weights(fld.weights, int(blocks)), n)


def _relative_weights(a, blocks: int):
    """Each atom's weight over its block's mean weight, ``(blocks · n,)``."""
    a = a.reshape(blocks, -1)
    return (a / jnp.mean(a, 1, keepdims=True)).reshape(-1)


def _block_weights(a, blocks: int):
    """Each block's mean atom weight ``A_b / n``, ``(blocks,)``."""
    return jnp.mean(a.reshape(blocks, -1), 1)


@problem_jit(static_argnums=(2,))
def _block_gram(problem: Problem, X, r, n: int):
    cols = [map_rows(lambda R, Xb=X[b * n:(b + 1) * n], rb=r[b * n:(b + 1) * n]: problem.kernel(R, Xb) @ rb, X,
                     block_size(n, problem.max_block)) for b in range(X.shape[0] // n)]
    return jnp.stack(cols, 1)


@problem_jit(static_argnums=(2,))
def update_block_gram(problem: Problem, gram: jax.Array, fld: Field, blocks: int) -> jax.Array:
    """:func:`block_gram` of ``fld`` from that of the buffer before the last mix.

    ``fld`` is the mixed buffer: its first block is the new one and the rest are the old buffer's
    first ``blocks − 1`` blocks, shifted (:meth:`~bolt.problem.Problem.mix`). Only the new block's
    kernel sums are computed — ``K(X, new)`` once, its row sums giving the new column and its column
    sums the new block's rows — ``blocks · n²`` kernel evaluations instead of ``(blocks · n)²``.
    """
    X = fld.particles
    B = int(blocks)
    n = X.shape[0] // B
    N = X[:n]
    r = _relative_weights(fld.weights, B).reshape(B, n)
    c = min(n, block_size(n, problem.max_block))
    n_chunks = -(-n // c)
    pad = n_chunks * c - n

    def one_block(args):  # weighted row sums of K(Xb, N) and column sums, chunked over the rows of Xb
        Xb, rb = args
        R = jnp.concatenate([Xb, jnp.zeros((pad, X.shape[1]), X.dtype)]).reshape(n_chunks, c, -1)
        m = jnp.concatenate([rb, jnp.zeros(pad, X.dtype)]).reshape(n_chunks, c)

        def chunk(acc, rm):
            rows_, mask = rm
            K = problem.kernel(rows_, N)
            return acc + mask @ K, K @ r[0]

        col, rows = jax.lax.scan(chunk, jnp.zeros(n, X.dtype), (R, m))
        return rows.reshape(-1)[:n], col

    rows, cols = jax.lax.map(one_block, (X.reshape(B, n, -1), r))  # (B, n) each
    new = jnp.zeros_like(gram)
    new = new.at[:, 0].set(rows.reshape(-1))
    new = new.at[:n, 1:].set(cols[1:].T)
    return new.at[n:, 1:].set(gram[: (B - 1) * n, : B - 1])


def herd_field(problem: Problem, fld: Field, size: int, *, candidates: int | None = None,
               gram: jax.Array | None = None) -> tuple[Field, jax.Array]:
    """``size`` equal-weight points herded from the arcsine-route field ``fld``, and ``MMD/noise``.

    Args:
      problem: the problem (its kernel ``K``).
      fld: a field with ``n`` weighted particles (arcsine route; expectation-route fields are
        returned unchanged with ratio 0, since ``f̂`` on the input sample is already their size).
      size: the number of points ``m`` (a point may be picked more than once; the weights are
        ``1/m`` each). ``size >= n`` returns ``fld`` unchanged with ratio 0.
      candidates: herd from this many of µ's points (every ``n/candidates``-th; default all ``n``,
        which also gives ``∫∫K dµ dµ`` for the ratio at no extra cost); the target is always the
        whole of µ.
      gram: µ's :func:`block_gram` (``(n, blocks)``), which replaces the ``n²`` pass for ``µK``.

    Returns:
      ``(ν, ratio)``: the herded field and ``MMD_K(ν, µ)`` over the Monte Carlo noise of µ's own
      points, ``sqrt((Σ a_i K(w_i, w_i) − ∫∫K dµ dµ) · Σ a_i²)``.
    """
    n = fld.particles.shape[0]
    if problem.route != "arcsine" or size <= 0 or size >= n:
        return fld, jnp.zeros((), fld.weights.dtype)
    c = n if candidates is None else min(n, int(candidates))
    if gram is not None:
        return _herd_gram(problem, fld, gram, int(size), c)
    return _herd(problem, fld, int(size), c)


@problem_jit(static_argnums=(1, 2))
def _herd(problem: Problem, fld: Field, size: int, n_cand: int):
    X, a = fld.particles, fld.weights
    stride = X.shape[0] // n_cand
    C = X[:: stride][:n_cand]
    full = Field(X, a, fld.fhat)
    mu_c = problem.psi_field(C, full) - problem.ftilde(C)  # µK on the candidates
    mu_x = mu_c if n_cand == X.shape[0] else problem.psi_field(X, full) - problem.ftilde(X)
    return _greedy(problem, fld, C, mu_c, mu_x, size)


@problem_jit(static_argnums=(2, 3))
def _herd_gram(problem: Problem, fld: Field, gram, size: int, n_cand: int):
    X, a = fld.particles, fld.weights
    mu_x = gram @ _block_weights(a, gram.shape[1])  # µK(x_i) = Σ_b (A_b/n) G[i, b]
    stride = X.shape[0] // n_cand
    return _greedy(problem, fld, X[::stride][:n_cand], mu_x[::stride][:n_cand], mu_x, size)


def _greedy(problem: Problem, fld: Field, C, mu_c, mu_x, size: int):
    """Frank–Wolfe on the MMD over the candidates ``C`` (µK on them ``mu_c``, on all of µ ``mu_x``)."""
    X, a = fld.particles, fld.weights
    n_cand = C.shape[0]
    diag = problem.kernel_diag(X)
    mumu = jnp.sum(a * mu_x)  # ∫∫K dµ dµ

    def body(t, carry):
        S, A, idx = carry
        i = jnp.argmax(mu_c - S / (t + 1.0))
        k = problem.kernel(C, C[i][None])[:, 0]
        return S + k, A + 2.0 * S[i] + k[i], idx.at[t].set(i.astype(jnp.int32))

    S, A, idx = jax.lax.fori_loop(0, size, body, (jnp.zeros(n_cand, X.dtype), jnp.zeros((), X.dtype),
                                                  jnp.zeros(size, jnp.int32)))
    mmd2 = A / size**2 - 2.0 * jnp.mean(mu_c[idx]) + mumu
    noise2 = (jnp.sum(a * diag) - mumu) * jnp.sum(a**2)
    ratio = jnp.sqrt(jnp.maximum(mmd2, 0.0) / jnp.maximum(noise2, jnp.finfo(X.dtype).tiny))
    return Field(C[idx], jnp.full((size,), 1.0 / size, X.dtype), fld.fhat), ratio
