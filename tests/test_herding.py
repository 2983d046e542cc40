"""Kernel herding of the Picard field (bolt/gibbs/herding.py): Ψ is kept, the error is measured."""

import jax
import jax.numpy as jnp
import numpy as np

import bolt
from bolt.gibbs.herding import block_gram, herd_field, update_block_gram


def _problem():
    return bolt.make_problem("erf", bolt.Teacher([[1.5, 0.0], [0.0, 1.5]], [1.0, -0.5]), beta=1.0, tau=0.5)


def _field(pb, n=600, seed=0):
    rng = np.random.default_rng(seed)
    P = jnp.asarray(0.3 + np.sqrt(pb.tau) * rng.normal(size=(n, pb.d)))
    a = jnp.asarray(rng.uniform(0.5, 1.5, n))
    return pb.field(P, a / a.sum())


def test_reported_ratio_is_the_direct_mmd_over_the_noise():
    """MMD_K(ν, µ)² and the noise (Σ a K(w,w) − ∫∫K)Σa² recomputed from full kernel matrices."""
    pb = _problem()
    fld = _field(pb)
    for candidates in (None, 200):  # all points (the default), or a strided subset of them
        nu, ratio = herd_field(pb, fld, 60, candidates=candidates)
        X, a, S = fld.particles, fld.weights, nu.particles
        assert S.shape == (60, pb.d) and np.allclose(nu.weights, 1 / 60)
        Kxx, Ksx, Kss = (np.asarray(pb.kernel(u, v)) for u, v in ((X, X), (S, X), (S, S)))
        a = np.asarray(a)
        mmd2 = Kss.mean() - 2 * (Ksx @ a).mean() + a @ Kxx @ a
        noise2 = (a @ np.diag(Kxx) - a @ Kxx @ a) * np.sum(a**2)
        np.testing.assert_allclose(float(ratio), np.sqrt(mmd2 / noise2), rtol=1e-6)


def test_herded_psi_is_within_the_bound_and_far_better_than_a_random_subsample():
    """|Ψ(w; ν) − Ψ(w; µ)| ≤ sqrt(K(w,w)) MMD everywhere, and the herded field's error is well below
    a random subsample's of the same size (herding's 1/m against 1/√m) and below µ's own noise."""
    pb = _problem()
    fld = _field(pb, n=2000)
    m = 200
    nu, ratio = herd_field(pb, fld, m)
    W = jnp.asarray(np.random.default_rng(1).normal(size=(500, pb.d)))
    full = pb.psi_field(W, fld)
    err = np.abs(np.asarray(pb.psi_field(W, nu) - full))
    a = np.asarray(fld.weights)
    Kxx = np.asarray(pb.kernel(fld.particles, fld.particles))
    noise = np.sqrt((a @ np.diag(Kxx) - a @ Kxx @ a) * np.sum(a**2))
    bound = np.sqrt(np.asarray(pb.kernel_diag(W))) * float(ratio) * noise
    assert np.all(err <= bound * (1 + 1e-9) + 1e-12)
    idx = jax.random.choice(jax.random.PRNGKey(0), 2000, (m,), p=fld.weights)
    rand = pb.field(fld.particles[idx])
    rerr = np.abs(np.asarray(pb.psi_field(W, rand) - full))
    assert np.sqrt(np.mean(err**2)) < 0.25 * np.sqrt(np.mean(rerr**2))
    assert float(ratio) < 0.5


def test_no_herding_when_not_smaller():
    pb = _problem()
    fld = _field(pb, n=100)
    for size in (0, 100, 500):
        nu, ratio = herd_field(pb, fld, size)
        assert nu is fld and float(ratio) == 0.0


def test_picard_samples_the_herded_field_and_traces_its_error():
    pb = _problem()
    res = bolt.solve(pb, "picard-mala", seed=0, particles=400, chains=20, inner_steps=2, warmup=100,
                     max_iterations=3, min_iterations=3, field_size=300, progress_bar=False)
    assert res.field.particles.shape == (300, pb.d)
    r = res.trace["field_mmd_ratio"]
    assert len(r) == res.iterations and np.all((r > 0) & (r < 0.6)), r


def test_block_gram_kept_current_across_mixes_equals_the_full_pass():
    """update_block_gram after each of several Picard mixes equals block_gram recomputed from scratch
    (also with row chunks that do not divide the block, padded), its weighted sums are µK, and herding
    with it picks the same points. The blocks' atoms carry unequal weights, some negative (Picard's
    control-variate weights), or equal ones."""
    for max_block, signed in ((None, True), (5000, True), (None, False)):
        pb = _problem()
        if max_block is not None:
            pb.max_block = max_block  # 16-row chunks of a 300-row block: padding and a scan
        n, B = 300, 4
        rng = np.random.default_rng(5)

        def weights(m, rng=rng, signed=signed):
            w = 1.0 + (1.5 * rng.normal(size=m) if signed else np.zeros(m))
            return jnp.asarray(w / w.sum())

        fld = pb.field(jnp.asarray(0.7 * rng.normal(size=(n * B, pb.d))), weights(n * B))
        G = block_gram(pb, fld, B)
        for _ in range(5):
            fld = pb.mix(fld, pb.field(jnp.asarray(0.3 + 0.6 * rng.normal(size=(n, pb.d))), weights(n)), 0.5)
            assert np.any(np.asarray(fld.weights) < 0) == signed
            G = update_block_gram(pb, G, fld, B)
            np.testing.assert_allclose(G, block_gram(pb, fld, B), rtol=1e-11, atol=1e-11)
            a_blk = np.asarray(fld.weights).reshape(B, n).mean(1)
            mu = np.asarray(pb.kernel(fld.particles, fld.particles)) @ np.asarray(fld.weights)
            np.testing.assert_allclose(np.asarray(G) @ a_blk, mu, rtol=1e-11, atol=1e-12)
            (nu0, r0), (nu1, r1) = herd_field(pb, fld, 100), herd_field(pb, fld, 100, gram=G)
            assert np.array_equal(nu0.particles, nu1.particles)
            np.testing.assert_allclose(float(r1), float(r0), rtol=1e-8)


def test_undamped_buffer_herds_like_its_one_block():
    """With damping 1 the arcsine buffer is one block repeated; Picard herds from that block alone (an n²
    pass, not (buffer·n)²): the same measure, and the herded points are the ones herding the repeated
    buffer picks."""
    from bolt.gibbs.picard import _herding_source, _replace_all

    pb = _problem()
    block = pb.field(jnp.asarray(np.random.default_rng(2).normal(size=(150, pb.d))))
    tiled = _replace_all(pb.field(jnp.zeros((600, pb.d))), block)
    one = _herding_source(pb, tiled, 1.0, 150, 4)
    np.testing.assert_allclose(np.asarray(one.particles), np.asarray(block.particles), rtol=0, atol=0)
    np.testing.assert_allclose(one.weights, block.weights, rtol=1e-12)
    a, _ = herd_field(pb, tiled, 50)
    b, _ = herd_field(pb, one, 50)
    np.testing.assert_allclose(np.asarray(a.particles), np.asarray(b.particles), rtol=0, atol=0)
    assert _herding_source(pb, tiled, 0.5, 150, 4) is tiled  # damped: the whole buffer
