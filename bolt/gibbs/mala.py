"""MALA / ULA as a NumPyro :class:`~numpyro.infer.mcmc.MCMCKernel`.

The Metropolis-adjusted Langevin algorithm with a diagonal preconditioner M⁻¹ (adapted in warmup
with NumPyro's ``warmup_adapter``: dual-averaging step size towards ``target_accept_prob`` and a
Welford diagonal mass matrix):

.. math:: y = x - \\tfrac{\\epsilon^2}{2} M^{-1}\\nabla U(x) + \\epsilon M^{-1/2}\\xi,

accepted with the Metropolis–Hastings ratio (MALA) or always after warmup (ULA,
``adjusted=False``: warmup stays adjusted so the step size adapts stably, towards a higher
acceptance, 0.9 by default, which keeps ULA's O(ε²) bias small; the MH acceptance probability is
still reported as a diagnostic). Because it is an
``MCMCKernel``, NumPyro's ``MCMC`` driver, vectorised chains, ``jit_model_args`` and diagnostics
apply unchanged, and the model's arguments (the current µ_k) are read at every step, so a
Picard iteration reuses one compiled sampler.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import random
from jax.flatten_util import ravel_pytree
from numpyro.infer.hmc_util import warmup_adapter
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.mcmc import MCMCKernel
from numpyro.infer.util import initialize_model
from numpyro.util import identity, is_prng_key

__all__ = ["MALA", "MALAState"]


class MALAState(NamedTuple):
    """State of :class:`MALA` (field names follow NumPyro's HMC state where they mean the same)."""

    i: jax.Array
    z: dict
    potential_energy: jax.Array
    z_grad: dict
    accept_prob: jax.Array
    mean_accept_prob: jax.Array
    diverging: jax.Array
    adapt_state: object
    rng_key: jax.Array


class MALA(MCMCKernel):
    """Metropolis-adjusted (or unadjusted) Langevin kernel for NumPyro models.

    Args:
      model: a NumPyro model; its arguments are passed at every step (dynamic), so running the
        same ``MCMC`` object on new arguments of the same shapes does not recompile.
      step_size: initial ε.
      adjusted: MALA (True) or ULA (False).
      adapt_step_size: adapt ε in warmup towards ``target_accept_prob``.
      adapt_mass_matrix: adapt a diagonal M⁻¹ in warmup.
      target_accept_prob: default 0.574 (optimal for MALA in high dimension), 0.9 for ULA.
      init_strategy: NumPyro init strategy when no ``init_params`` are given.

    Example:
      >>> import numpyro, numpyro.distributions as dist
      >>> from numpyro.infer import MCMC
      >>> def model(): numpyro.sample("x", dist.Normal(0.0, 1.0))
      >>> mcmc = MCMC(MALA(model), num_warmup=200, num_samples=200, progress_bar=False)
      >>> mcmc.run(jax.random.PRNGKey(0))

    References:
      Roberts & Tweedie (1996), Exponential convergence of Langevin distributions.
    """

    def __init__(self, model, step_size: float = 0.1, adjusted: bool = True, adapt_step_size: bool = True,
                 adapt_mass_matrix: bool = True, target_accept_prob: float | None = None,
                 init_strategy=init_to_uniform):
        self._model = model
        self._step_size = float(step_size)
        self._adjusted = bool(adjusted)
        self._adapt_step_size = adapt_step_size
        self._adapt_mass_matrix = adapt_mass_matrix
        self._target_accept_prob = target_accept_prob or (0.574 if adjusted else 0.9)
        self._init_strategy = init_strategy
        self._postprocess_fn = None
        self._potential_fn_gen = None

    @property
    def model(self):
        return self._model

    @property
    def sample_field(self):
        return "z"

    @property
    def default_fields(self):
        return ("z",)

    def get_diagnostics_str(self, state):
        return f"step size {float(jnp.mean(state.adapt_state.step_size)):.2e}. " \
               f"acc. prob={float(jnp.mean(state.mean_accept_prob)):.2f}"

    def postprocess_fn(self, args, kwargs):
        if self._postprocess_fn is None:
            return identity
        return self._postprocess_fn(*args, **kwargs)

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        self._num_warmup = num_warmup
        model_kwargs = {} if model_kwargs is None else model_kwargs
        key0 = rng_key if is_prng_key(rng_key) else rng_key[0]
        info, self._potential_fn_gen, self._postprocess_fn, _ = initialize_model(
            key0, self._model, dynamic_args=True, init_strategy=self._init_strategy,
            model_args=model_args, model_kwargs=model_kwargs)
        self._wa_init, self._wa_update = warmup_adapter(
            num_warmup, adapt_step_size=self._adapt_step_size, adapt_mass_matrix=self._adapt_mass_matrix,
            dense_mass=False, target_accept_prob=self._target_accept_prob)
        gen = self._potential_fn_gen

        def init_one(params, key, args, kwargs):
            pe, grad = jax.value_and_grad(gen(*args, **kwargs))(params)
            size = ravel_pytree(params)[0].shape[0]
            wa = self._wa_init((params,), key, self._step_size, mass_matrix_size=size)
            wa = wa._replace(rng_key=None)
            zero = jnp.zeros((), pe.dtype)
            return MALAState(jnp.array(0), params, pe, grad, zero, zero, jnp.array(False), wa, key)

        self._vectorized = not is_prng_key(rng_key)
        # one compiled program (the model's arguments passed, not baked in), not an op-by-op evaluation
        if is_prng_key(rng_key):
            params = info[0] if init_params is None else init_params
            return jax.jit(init_one)(params, rng_key, model_args, model_kwargs)
        if init_params is None:
            keys = jax.vmap(lambda k: random.split(k)[0])(rng_key)
            params = jax.vmap(lambda k: initialize_model(
                k, self._model, init_strategy=self._init_strategy, model_args=model_args,
                model_kwargs=model_kwargs)[0][0])(keys)
        else:
            params = init_params
        return jax.jit(jax.vmap(init_one, in_axes=(0, 0, None, None)))(params, rng_key, model_args, model_kwargs)

    def sample(self, state, model_args, model_kwargs):
        model_kwargs = {} if model_kwargs is None else model_kwargs
        potential_fn = self._potential_fn_gen(*model_args, **model_kwargs)
        if getattr(self, "_vectorized", False):
            return jax.vmap(lambda s: self._sample_one(s, potential_fn))(state)
        return self._sample_one(state, potential_fn)

    def _sample_one(self, state, potential_fn):
        i, x, x_pe, x_grad, _, mean_acc, _, adapt, rng_key = state
        x_flat, unravel = ravel_pytree(x)
        g_flat, _ = ravel_pytree(x_grad)
        rng_key, k_noise, k_acc = random.split(rng_key, 3)
        eps = adapt.step_size
        minv = adapt.inverse_mass_matrix
        msqrt_inv = adapt.mass_matrix_sqrt_inv  # sqrt(M⁻¹)
        msqrt = adapt.mass_matrix_sqrt

        def mean_from(pos_flat, grad_flat):
            return pos_flat - 0.5 * eps**2 * minv * grad_flat

        y_flat = mean_from(x_flat, g_flat) + eps * msqrt_inv * random.normal(k_noise, x_flat.shape, x_flat.dtype)
        y = unravel(y_flat)
        y_pe, y_grad = jax.value_and_grad(potential_fn)(y)
        yg_flat, _ = ravel_pytree(y_grad)

        def log_q(to_flat, frm_flat, frm_grad):
            r = msqrt * (to_flat - mean_from(frm_flat, frm_grad)) / eps
            return -0.5 * jnp.sum(r * r)

        log_ratio = x_pe - y_pe + log_q(x_flat, y_flat, yg_flat) - log_q(y_flat, x_flat, g_flat)
        log_ratio = jnp.where(jnp.isfinite(log_ratio), log_ratio, -jnp.inf)
        accept_prob = jnp.exp(jnp.minimum(log_ratio, 0.0))
        diverging = ~jnp.isfinite(y_pe)
        mh = random.uniform(k_acc, (), accept_prob.dtype) < accept_prob
        # ULA: Metropolis-adjusted during warmup (so the step-size adaptation is stable), then unadjusted.
        accept = mh if self._adjusted else jnp.where(i < self._num_warmup, mh, ~diverging)
        x, x_pe, x_grad = jax.tree.map(lambda a, b: jnp.where(accept, a, b), (y, y_pe, y_grad), (x, x_pe, x_grad))
        adapt = jax.lax.cond(i < self._num_warmup,
                             lambda a: self._wa_update(i, accept_prob, (x,), a),
                             lambda a: a, adapt)
        itr = i + 1
        n = jnp.where(i < self._num_warmup, itr, itr - self._num_warmup)
        mean_acc = mean_acc + (accept_prob - mean_acc) / n
        return MALAState(itr, x, x_pe, x_grad, accept_prob, mean_acc, diverging, adapt, rng_key)

    def __getstate__(self):
        st = self.__dict__.copy()
        st["_wa_update"] = st["_wa_init"] = st["_potential_fn_gen"] = None
        return st
