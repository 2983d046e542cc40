"""The problem model: f̂, R0, f̃, K, Ψ, ∇Ψ, R and F for weighted particle measures (MATH.md §1).

Two evaluation routes, chosen automatically:

- ``"arcsine"`` — σ = erf, inputs N(0, I_d), target a teacher / linear / realizable function:
  closed-form arcsine kernel and its analytic gradient,
  ``Ψ(w; µ) = f̃(w) + Σ_i a_i K(w, w_i)``, chunked over rows so memory stays bounded. For a
  realizable target f̃ and R0 are one- and two-dimensional quadratures of the exact f
  (:func:`~bolt.problem.kernels.realizable_ftilde`, error below 1e-12).
- ``"expectation"`` — everything else: π is a fixed sample ``X`` ``(n_x, p)`` with values
  ``Y = f(X)``, and ``Ψ(w; µ) = (1/n_x) Σ_j (f̂(X_j; µ) − Y_j) σ(X_j; w)``. Cost
  ``O(n_x (N + M))``; no ``N × M`` matrix is ever built.

Ψ is linear in µ, so it is evaluated from a :class:`Field` — the smallest fixed-shape summary of
µ that determines Ψ(·; µ): the weighted particles themselves on the arcsine route, the vector
``f̂(X_j; µ)`` on the expectation route. Fields mix linearly (:meth:`Problem.mix`), which is how
the damped Picard iteration keeps a fixed shape and compiles once.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from functools import wraps
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf

from bolt._chunk import MAX_BLOCK_ELEMENTS, block_size, map_rows, sum_over_rows
from bolt.errors import BoltError
from bolt.problem.activations import Activation, get_activation
from bolt.problem.kernels import (
    RealizableRule,
    arcsine_kernel,
    arcsine_kernel_diag,
    arcsine_kernel_grad,
    linear_ftilde,
    linear_ftilde_grad,
    realizable_ftilde,
    realizable_ftilde_grad,
    realizable_r0,
    realizable_rule,
)
from bolt.problem.spec import (
    CallableTarget,
    DataInputs,
    DataTarget,
    GaussianInputs,
    Linear,
    Realizable,
    SampleInputs,
    Teacher,
    check_array,
)

__all__ = ["Problem", "Field", "make_problem", "uniform_weights"]

Array = jax.Array


class Field(NamedTuple):
    """A fixed-shape summary of µ that determines Ψ(·; µ) (linear in µ).

    Attributes:
      particles: ``(m, d)`` support points (arcsine route; ``(0, d)`` otherwise).
      weights: ``(m,)`` their weights.
      fhat: ``(n_x,)`` values f̂(X_j; µ) on the input sample (expectation route; ``(0,)`` otherwise).
    """

    particles: Array
    weights: Array
    fhat: Array


def uniform_weights(n: int, dtype=None) -> Array:
    """``(n,)`` weights ``1/n``."""
    return jnp.full((n,), 1.0 / n, dtype=dtype or jnp.result_type(float))


def _check_weights(particles, weights, d: int, name: str = "particles"):
    particles = jnp.asarray(particles)
    if particles.ndim != 2 or particles.shape[1] != d:
        raise BoltError(f"{name}: expected shape (n, {d}), got {tuple(particles.shape)}")
    if particles.shape[0] == 0:
        raise BoltError(f"{name}: empty particle set")
    if weights is None:
        weights = uniform_weights(particles.shape[0], particles.dtype)
    weights = jnp.asarray(weights, particles.dtype)
    if weights.shape != (particles.shape[0],):
        raise BoltError(f"weights: expected shape ({particles.shape[0]},), got {tuple(weights.shape)}")
    return particles, weights


#: Per problem (weakly keyed: the entry goes with the problem): its compiled evaluation methods and
#: the memo of :meth:`Problem.self_psi`. Kept out of the instance so that a copy never shares them.
_PER_PROBLEM: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _own(problem) -> dict:
    entry = _PER_PROBLEM.get(problem)
    if entry is None:
        entry = _PER_PROBLEM[problem] = {"jit": {}, "memo": {}}
    return entry


def full_precision():
    """Context: matrix products traced inside it run at full precision.

    On GPUs JAX's default for float32 products is TF32 (a 10-bit mantissa): with
    ``solver.precision = "float32"`` the MFLD drift's relative error was 3·10⁻³ on an H200 instead
    of float32's ~10⁻⁷ (studies/benchmarks/README.md, gpu.sh). float64 products, and every product
    on CPUs, are unaffected. The derivative rule of a ``jax.custom_jvp`` activation is traced where
    it is differentiated: differentiated from outside a problem method, its products take the
    caller's precision (nothing in bolt does that in float32).
    """
    return jax.default_matmul_precision("highest")


def problem_jit(fn=None, *, static_argnums: tuple[int, ...] = ()):
    """``jax.jit`` for a function whose first argument is a :class:`Problem`, compiled per problem.

    The problem is not a traced or static argument: each problem gets its own compiled function,
    which refers to it weakly and is dropped with it, so compiled programs and data are freed with
    the problem (a static ``jax.jit`` argument would keep every problem alive in JAX's caches).
    ``static_argnums`` count the arguments after the problem. Positional arguments only.
    The body is traced under :func:`full_precision`.
    """
    if fn is None:
        return lambda f: problem_jit(f, static_argnums=static_argnums)

    @wraps(fn)
    def call(problem, *args):
        jitted = _own(problem)["jit"]
        f = jitted.get(fn)
        if f is None:
            ref = weakref.ref(problem)

            def traced(*a):
                with full_precision():
                    return fn(ref(), *a)

            f = jitted[fn] = jax.jit(traced, static_argnums=static_argnums)
        return f(*args)

    return call


@dataclass(eq=False)
class Problem:
    """A two-layer mean-field problem: unit σ, input law π, target f, and β, τ.

    Build one with :func:`make_problem` (or :func:`bolt.config.problem_from_config`). All
    evaluation methods are jit-compatible and differentiable; the problem is a static closure, and
    the evaluation methods are compiled per instance: treat a problem as immutable once used.

    Attributes:
      activation: the unit σ.
      d: weight dimension.
      beta: inverse temperature β > 0.
      tau: prior variance τ > 0.
      route: ``"arcsine"`` or ``"expectation"``.
      X, Y: the input sample and target values (expectation route), else ``None``.
    """

    activation: Activation
    d: int
    inputs: object
    target: object
    beta: float
    tau: float
    route: str
    X: Array | None = None
    Y: Array | None = None
    max_block: int = MAX_BLOCK_ELEMENTS
    _nodes: Array | None = field(default=None, repr=False)
    _coefs: Array | None = field(default=None, repr=False)
    _linear_a: Array | None = field(default=None, repr=False)
    _realizable: RealizableRule | None = field(default=None, repr=False)
    _r0: float | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ basics
    @property
    def p(self) -> int:
        """Input dimension."""
        return self.activation.input_dim(self.d)

    @property
    def lam(self) -> float:
        """λ = τ/β, the weight of the KL term."""
        return self.tau / self.beta

    def sigma(self, X: Array, W: Array) -> Array:
        """σ(X_j; W_i) as an ``(n, m)`` array."""
        return self.activation.matrix(X, W)

    def target_values(self, X: Array) -> Array:
        """f(X_j) for inputs ``X`` ``(n, p)`` (not available for data targets off the data)."""
        t = self.target
        X = jnp.asarray(X)
        if isinstance(t, Teacher):
            return self.sigma(X, jnp.asarray(t.weights, X.dtype)) @ jnp.asarray(t.coefficients, X.dtype)
        if isinstance(t, Linear):
            return X @ jnp.asarray(t.a, X.dtype)
        if isinstance(t, Realizable):
            m = jnp.asarray(t.mean, X.dtype)
            if self.activation.name == "erf":
                return erf((X @ m) / jnp.sqrt(1.0 + 2.0 * self.tau * jnp.sum(X * X, -1)))
            if self.activation.name == "erf_bias":
                num = m[0] + X @ m[1:]
                return erf(num / jnp.sqrt(1.0 + 2.0 * self.tau * (1.0 + jnp.sum(X * X, -1))))
            nodes, coefs = self._realizable_nodes(X.dtype)  # other units: the `nodes`-draw network
            return self.sigma(X, nodes) @ coefs
        if isinstance(t, CallableTarget):
            return jax.vmap(t.fn)(X)
        raise BoltError("problem.target: data labels are only defined on the data set")

    def _realizable_nodes(self, dtype):
        t = self.target
        half = int(t.nodes) // 2
        z = jax.random.normal(jax.random.PRNGKey(0), (half, self.d), dtype)
        z = jnp.concatenate([z, -z], 0)  # antithetic pairs: the node mean is exactly `mean`
        nodes = jnp.asarray(t.mean, dtype)[None, :] + jnp.sqrt(self.tau) * z
        return nodes, uniform_weights(nodes.shape[0], dtype)

    # ------------------------------------------------------------------ fields
    def field(self, particles: Array, weights: Array | None = None) -> Field:
        """The :class:`Field` of µ = Σ_i a_i δ_{w_i}."""
        particles, weights = _check_weights(particles, weights, self.d)
        if self.route == "arcsine":
            return Field(particles, weights, jnp.zeros((0,), particles.dtype))
        fhat = self.fhat(self.X, particles, weights)
        return Field(jnp.zeros((0, self.d), particles.dtype), jnp.zeros((0,), particles.dtype), fhat)

    def mix(self, old: Field, new: Field, alpha) -> Field:
        """Field of ``(1 − α) µ_old + α µ_new`` with the shape of ``old``.

        Expectation route: exact (``f̂`` is linear in µ). Arcsine route: ``old`` is a buffer of
        blocks the size of ``new``; the newest block enters with weight α, older blocks are scaled
        by ``1 − α``, and the oldest block (weight ``≤ (1 − α)^H`` after ``H`` mixes) is dropped
        and the rest renormalised. A fixed point of Γ is unchanged by this truncation.
        """
        if self.route == "expectation":
            return old._replace(fhat=(1.0 - alpha) * old.fhat + alpha * new.fhat)
        n_new, n_old = new.particles.shape[0], old.particles.shape[0]
        if n_old <= n_new:
            raise BoltError(f"mix: the buffer ({n_old} particles) must hold more than one block of {n_new}")
        parts = jnp.concatenate([new.particles, old.particles[: n_old - n_new]], 0)
        wts = jnp.concatenate([alpha * new.weights, (1.0 - alpha) * old.weights[: n_old - n_new]])
        return Field(parts, wts / jnp.sum(wts), old.fhat)

    # ------------------------------------------------------------------ f̃, K, Ψ
    @problem_jit  # one program per method (per shape), not one per array operation
    def ftilde(self, W: Array) -> Array:
        """f̃(w) = −E_π[f(X) σ(X; w)] for rows of ``W`` ``(m, d)``."""
        W = jnp.asarray(W)
        if self.route == "arcsine":
            if self._linear_a is not None:
                return linear_ftilde(W, self._linear_a.astype(W.dtype))
            if self._realizable is not None:
                rule = self._realizable
                return map_rows(lambda B: realizable_ftilde(B, rule), W, block_size(rule.q.shape[0], self.max_block))
            kern = lambda B: arcsine_kernel(B, self._nodes.astype(W.dtype)) @ self._coefs.astype(W.dtype)
            return -map_rows(kern, W, block_size(self._nodes.shape[0], self.max_block))
        Y = self.Y.astype(W.dtype)
        X = self.X.astype(W.dtype)
        return -map_rows(lambda B: self.sigma(X, B).T @ Y, W, block_size(X.shape[0], self.max_block)) / X.shape[0]

    @problem_jit
    def kernel(self, W: Array, V: Array) -> Array:
        """K(w, v) = E_π[σ(X; w) σ(X; v)] as an ``(m, k)`` matrix (small inputs only)."""
        W, V = jnp.asarray(W), jnp.asarray(V)
        if self.route == "arcsine":
            return arcsine_kernel(W, V)
        X = self.X.astype(W.dtype)
        return self.sigma(X, W).T @ self.sigma(X, V) / X.shape[0]

    @problem_jit
    def kernel_diag(self, W: Array) -> Array:
        """K(w_i, w_i) for rows of ``W``."""
        W = jnp.asarray(W)
        if self.route == "arcsine":
            return arcsine_kernel_diag(W)
        X = self.X.astype(W.dtype)
        return map_rows(lambda B: jnp.mean(self.sigma(X, B) ** 2, 0), W, block_size(X.shape[0], self.max_block))

    def fhat(self, X: Array, particles: Array, weights: Array | None = None) -> Array:
        """f̂(X_j; µ) = Σ_i a_i σ(X_j; w_i) for inputs ``X`` ``(n, p)``, chunked over particles."""
        particles, weights = _check_weights(particles, weights, self.d)
        X = jnp.asarray(X, particles.dtype)
        with full_precision():
            return sum_over_rows(lambda P, a: self.sigma(X, P) @ a, particles, weights,
                                 block_size(X.shape[0], self.max_block))

    @problem_jit
    def psi_field(self, W: Array, fld: Field) -> Array:
        """Ψ(w; µ) for rows of ``W`` ``(m, d)``, µ given by its :class:`Field`."""
        W = jnp.asarray(W)
        if self.route == "arcsine":
            P, a = fld.particles.astype(W.dtype), fld.weights.astype(W.dtype)
            inter = map_rows(lambda B: arcsine_kernel(B, P) @ a, W, block_size(P.shape[0], self.max_block))
            return self.ftilde(W) + inter
        X = self.X.astype(W.dtype)
        r = (fld.fhat - self.Y).astype(W.dtype)
        return map_rows(lambda B: self.sigma(X, B).T @ r, W, block_size(X.shape[0], self.max_block)) / X.shape[0]

    @problem_jit
    def grad_psi_field(self, W: Array, fld: Field) -> Array:
        """∇_w Ψ(w; µ) for rows of ``W`` ``(m, d)``: an ``(m, d)`` array."""
        W = jnp.asarray(W)
        if self.route == "arcsine":
            P, a = fld.particles.astype(W.dtype), fld.weights.astype(W.dtype)
            g = map_rows(lambda B: arcsine_kernel_grad(B, P, a), W, block_size(P.shape[0], self.max_block))
            if self._linear_a is not None:
                return g + linear_ftilde_grad(W, self._linear_a.astype(W.dtype))
            if self._realizable is not None:
                rule = self._realizable
                return g + map_rows(lambda B: realizable_ftilde_grad(B, rule), W,
                                    block_size(rule.q.shape[0], self.max_block))
            nodes, c = self._nodes.astype(W.dtype), self._coefs.astype(W.dtype)
            return g - map_rows(lambda B: arcsine_kernel_grad(B, nodes, c), W,
                                block_size(nodes.shape[0], self.max_block))
        X = self.X.astype(W.dtype)
        r = (fld.fhat - self.Y).astype(W.dtype)

        def block(B):
            return jax.grad(lambda V: jnp.sum(self.sigma(X, V).T @ r))(B) / X.shape[0]

        return map_rows(block, W, block_size(X.shape[0], self.max_block))

    def self_psi(self, particles: Array, weights: Array | None = None) -> Array:
        """Ψ(w_i; µ) at µ's own atoms, µ = Σ_i a_i δ_{w_i}: behind ``∫∫K dµ dµ``, the risk and the
        estimators' influence functions (on the arcsine route one ``n × n`` kernel pass; on the
        expectation route ``O(n · n_x)``).

        Outside ``jit`` the result is memoised on the arrays' contents (the last two measures), so the
        summary, the bounds and the risk of the same draws share one evaluation.
        """
        particles, weights = _check_weights(particles, weights, self.d)
        if isinstance(particles, jax.core.Tracer) or isinstance(weights, jax.core.Tracer):
            return self.psi_field(particles, self.field(particles, weights))
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        for a in (particles, weights):
            a = np.asarray(a)
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        key = h.hexdigest()
        memo = _own(self)["memo"]
        if key not in memo:
            value = self.psi_field(particles, self.field(particles, weights))
            if isinstance(value, jax.core.Tracer):  # traced all the same (e.g. a tracer among the weights)
                return value
            if len(memo) >= 2:
                memo.pop(next(iter(memo)))
            memo[key] = value
        return memo[key]

    @problem_jit
    def kernel_grad_sums(self, W: Array, V: Array, C: Array) -> Array:
        """``Σ_l C[l, b] ∇_w K(w_i, v_l)`` for rows ``w_i`` of ``W`` ``(m, d)``, centres ``V`` ``(k, d)`` and
        several coefficient columns ``C`` ``(k, B)`` at once: an ``(m, d, B)`` array.

        ``∇_w Ψ(w; ν)`` without its f̃ part, for ``B`` signed measures ``ν_b = Σ_l C[l, b] δ_{v_l}`` on the
        same atoms (e.g. bootstrap replicates of a field's noise). One forward-mode derivative per
        coordinate of ``W ↦ K(W, V) C``, chunked over rows.
        """
        W, V = jnp.asarray(W), jnp.asarray(V)
        C = jnp.asarray(C, W.dtype)
        if self.route == "arcsine":
            def sums(B):
                return arcsine_kernel(B, V.astype(W.dtype)) @ C
            other = V.shape[0] + C.shape[1]
        else:
            X = self.X.astype(W.dtype)
            F = self.sigma(X, V.astype(W.dtype)) @ C / X.shape[0]  # (n_x, B)

            def sums(B):
                return self.sigma(X, B).T @ F
            other = X.shape[0] + C.shape[1]

        def block(B):  # one jvp per coordinate, in a loop (compiled once whatever d)
            def along(k):
                return jax.jvp(sums, (B,), (jnp.broadcast_to(jax.nn.one_hot(k, self.d, dtype=W.dtype), B.shape),))[1]

            return jnp.moveaxis(jax.lax.map(along, jnp.arange(self.d)), 0, 1)

        return map_rows(block, W, block_size(other, self.max_block))

    def psi(self, W: Array, particles: Array, weights: Array | None = None) -> Array:
        """Ψ(w; µ) = f̃(w) + ∫K(w, v) µ(dv) for µ = Σ a_i δ_{w_i}."""
        return self.psi_field(W, self.field(particles, weights))

    def grad_psi(self, W: Array, particles: Array, weights: Array | None = None) -> Array:
        """∇_w Ψ(w; µ) for µ = Σ a_i δ_{w_i}."""
        return self.grad_psi_field(W, self.field(particles, weights))

    # ------------------------------------------------------------------ risk, free energy
    def R0(self) -> Array:
        """R0 = E_π f² (computed once when the problem is built)."""
        if self._r0 is not None:
            return jnp.asarray(self._r0)
        if self.route == "expectation":
            return jnp.mean(self.Y ** 2)
        if self._linear_a is not None:
            return jnp.sum(self._linear_a ** 2)
        if self._realizable is not None:
            return jnp.asarray(realizable_r0(self._realizable, self.tau))
        V, c = self._nodes, self._coefs
        quad = map_rows(lambda B: arcsine_kernel(B, V) @ c, V, block_size(V.shape[0], self.max_block))
        return jnp.sum(c * quad)

    def interaction(self, particles: Array, weights: Array | None = None, *, unbiased: bool = False) -> Array:
        """∫∫ K dµ dµ for µ = Σ a_i δ_{w_i}.

        With ``unbiased=True`` (uniform weights only) the diagonal is removed — the U-statistic
        estimate of ``∫∫K dν dν`` when the particles are iid draws of ν (MATH.md §3, Maurey).
        """
        particles, weights = _check_weights(particles, weights, self.d)
        if self.route == "arcsine":
            v = jnp.sum(weights * (self.self_psi(particles, weights) - self.ftilde(particles)))
        else:
            v = jnp.mean(self.fhat(self.X, particles, weights) ** 2)
        if not unbiased:
            return v
        n = particles.shape[0]
        return (n * v - jnp.mean(self.kernel_diag(particles))) / (n - 1)

    def risk(self, particles: Array, weights: Array | None = None, *, unbiased: bool = False) -> Array:
        """R(µ) = E_π (f − f̂(·; µ))² = R0 + 2∫f̃ dµ + ∫∫K dµ dµ.

        ``unbiased=True`` estimates R(ν) from iid draws of ν (U-statistic for the quadratic term);
        the default is the exact risk of the weighted particle measure itself.
        """
        particles, weights = _check_weights(particles, weights, self.d)
        if self.route == "expectation" and not unbiased:
            fhat = self.fhat(self.X, particles, weights)
            return jnp.mean((self.Y - fhat) ** 2)
        return (self.R0() + 2.0 * jnp.sum(weights * self.ftilde(particles))
                + self.interaction(particles, weights, unbiased=unbiased))

    def free_energy(self, risk, kl):
        """F(µ) = ½ R(µ) + (τ/β) KL(µ‖γ_τ) from a risk and a KL value."""
        return 0.5 * risk + (self.tau / self.beta) * kl

    @problem_jit
    def log_density(self, W: Array, fld: Field) -> Array:
        """Unnormalised log-density of Γ(µ): ``−|w|²/(2τ) − (β/τ) Ψ(w; µ)``."""
        W = jnp.asarray(W)
        return -jnp.sum(W * W, -1) / (2.0 * self.tau) - (self.beta / self.tau) * self.psi_field(W, fld)

    @problem_jit
    def score(self, W: Array, fld: Field) -> Array:
        """∇ log-density of Γ(µ): ``−w/τ − (β/τ) ∇Ψ(w; µ)``."""
        W = jnp.asarray(W)
        return -W / self.tau - (self.beta / self.tau) * self.grad_psi_field(W, fld)

    # ------------------------------------------------------------------ constants
    def risk_at_prior(self, key: Array | None = None, n: int = 4096) -> float:
        """R(γ_τ). Exact (= R0) for odd σ, whose γ_τ-network is ≡ 0; else a U-statistic over ``n`` draws."""
        if self.activation.odd:
            return float(self.R0())
        key = jax.random.PRNGKey(0) if key is None else key
        W = jnp.sqrt(self.tau) * jax.random.normal(key, (n, self.d))
        return float(self.risk(W, unbiased=True))

    def lipschitz_sq(self, key: Array | None = None) -> tuple[float, str]:
        """``L_σ² = sup_w E_π |∇_w σ(X; w)|²`` and how it was obtained (``closed form``/``estimated``).

        Estimated by multistart gradient ascent over the input sample when there is no closed form.
        """
        if isinstance(self.inputs, GaussianInputs) and self.activation.lipschitz_sq_gaussian is not None:
            return float(self.activation.lipschitz_sq_gaussian(self.p)), "closed form"
        X = self.X if self.X is not None else self._gaussian_sample(4096)

        def g(w):
            J = self.activation.grad_w(X, w)
            return jnp.mean(jnp.sum(J * J, -1))

        key = jax.random.PRNGKey(1) if key is None else key
        starts = jnp.concatenate([jnp.zeros((1, self.d)),
                                  jnp.sqrt(self.tau) * jax.random.normal(key, (7, self.d))], 0)
        grad_g = jax.vmap(jax.value_and_grad(g))

        @jax.jit
        def ascend(w):  # normalised-step ascent, one compiled loop
            def body(_, carry):
                w, best = carry
                val, gr = grad_g(w)
                step = 0.05 * gr / (1e-12 + jnp.linalg.norm(gr, axis=-1, keepdims=True))
                return w + step, jnp.maximum(best, jnp.max(val))

            return jax.lax.fori_loop(0, 200, body, (w, -jnp.inf))

        w, best = ascend(starts)
        return float(jnp.maximum(best, jnp.max(grad_g(w)[0]))), "estimated"

    def constants(self) -> dict:
        """The problem constants: R0, R(γ_τ), L_σ², κ = L_σ² R(γ_τ), and the route."""
        r0 = float(self.R0())
        rg = self.risk_at_prior()
        lsq, how = self.lipschitz_sq()
        return {"R0": r0, "risk_at_prior": rg, "L_sigma_squared": lsq, "L_sigma_squared_method": how,
                "kappa": lsq * rg, "route": self.route}

    def _gaussian_sample(self, n: int) -> Array:
        return jax.random.normal(jax.random.PRNGKey(0), (n, self.p))

    def describe(self) -> dict:
        """A JSON-friendly description of the problem."""
        t = self.target
        return {"dim": self.d, "input_dim": self.p, "activation": self.activation.name,
                "inputs": self.inputs.kind, "input_samples": None if self.X is None else int(self.X.shape[0]),
                "target": t.kind, "beta": self.beta, "tau": self.tau, "route": self.route}


def make_problem(activation="erf", target=None, *, dim: int | None = None, inputs=None,
                 beta: float = 1.0, tau: float = 1.0, seed: int = 0) -> Problem:
    """Build and validate a :class:`Problem`.

    Args:
      activation: ``"erf"``, ``"tanh"``, ``"erf_bias"`` or an :class:`~bolt.problem.activations.Activation`.
      target: a :class:`Teacher`, :class:`Linear`, :class:`Realizable`, :class:`CallableTarget`
        or :class:`DataTarget` (default: the labels of a data set, else required).
      dim: weight dimension ``d`` (inferred from the target or data when omitted).
      inputs: :class:`GaussianInputs` (default), :class:`SampleInputs` or :class:`DataInputs`.
      beta: inverse temperature, > 0.
      tau: prior variance, > 0.
      seed: seed of the fixed input sample (where one is drawn).

    Returns:
      A :class:`Problem` whose route is ``"arcsine"`` when closed forms apply, else ``"expectation"``.

    Example:
      >>> import numpy as np
      >>> pb = make_problem("erf", Teacher(np.eye(2)), beta=1.0, tau=0.5)
      >>> pb.route
      'arcsine'
    """
    act = get_activation(activation)
    inputs = GaussianInputs() if inputs is None else inputs
    for name, val in (("regularization.beta", beta), ("regularization.tau", tau)):
        try:
            ok = np.isfinite(float(val)) and float(val) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise BoltError(f"{name}: must be a positive finite number, got {val!r}")
    if target is None:
        target = DataTarget() if isinstance(inputs, DataInputs) else None
    if target is None:
        raise BoltError("problem.target: a target is required")
    if isinstance(target, DataTarget) and not isinstance(inputs, DataInputs):
        raise BoltError("problem.target.kind: 'data' needs problem.inputs = 'data'")

    # infer / check d
    if dim is None:
        if isinstance(target, Teacher):
            dim = target.weights.shape[1]
        elif isinstance(target, Realizable):
            dim = target.mean.shape[0]
        elif isinstance(inputs, DataInputs):
            dim = inputs.X.shape[1] + (1 if act.name == "erf_bias" else 0)
        elif isinstance(target, Linear):
            dim = target.a.shape[0] + (1 if act.name == "erf_bias" else 0)
        else:
            raise BoltError("problem.dim: cannot infer the weight dimension; give dim")
    try:
        dim = int(dim)
    except (TypeError, ValueError):
        raise BoltError(f"problem.dim: must be a positive integer, got {dim!r}") from None
    if dim < 1:
        raise BoltError(f"problem.dim: must be a positive integer, got {dim}")
    p = act.input_dim(dim)
    if p < 1:
        raise BoltError(f"problem.dim: {dim} is too small for activation {act.name!r}")
    if isinstance(target, Teacher) and target.weights.shape[1] != dim:
        raise BoltError(f"problem.target.weights: teacher neurons have dimension {target.weights.shape[1]}, "
                        f"but problem.dim = {dim}")
    if isinstance(target, Realizable) and target.mean.shape[0] != dim:
        raise BoltError(f"problem.target.mean: has dimension {target.mean.shape[0]}, but problem.dim = {dim}")
    if isinstance(target, Linear) and target.a.shape[0] != p:
        raise BoltError(f"problem.target.a: has dimension {target.a.shape[0]}, but the inputs have dimension {p}")
    if isinstance(inputs, DataInputs) and inputs.X.shape[1] != p:
        raise BoltError(f"problem.data: X has {inputs.X.shape[1]} columns but activation {act.name!r} "
                        f"with dim = {dim} needs inputs of dimension {p}")
    if isinstance(inputs, (GaussianInputs, SampleInputs)) and int(inputs.samples) < 2:
        raise BoltError("problem.input_samples: must be at least 2")

    closed = (act.name == "erf" and isinstance(inputs, GaussianInputs)
              and isinstance(target, (Teacher, Linear, Realizable)))
    pb = Problem(act, dim, inputs, target, float(beta), float(tau), "arcsine" if closed else "expectation")
    if closed:
        if isinstance(target, Linear):
            pb._linear_a = jnp.asarray(target.a)
        elif isinstance(target, Teacher):
            pb._nodes, pb._coefs = jnp.asarray(target.weights), jnp.asarray(target.coefficients)
        else:
            pb._realizable = realizable_rule(target.mean, float(tau))
        pb._r0 = float(pb.R0())
        return pb

    if isinstance(inputs, DataInputs):
        X = jnp.asarray(inputs.X)
    elif isinstance(inputs, SampleInputs) and inputs.X is not None:
        X = jnp.asarray(check_array(inputs.X, "problem.inputs: X", shape=(None, p)))
    else:
        X = jax.random.normal(jax.random.PRNGKey(seed), (int(inputs.samples), p))
    pb.X = X
    Y = jnp.asarray(inputs.Y) if isinstance(target, DataTarget) else pb.target_values(X)
    if Y.shape != (X.shape[0],):
        raise BoltError(f"problem.target: f(X) must have shape ({X.shape[0]},), got {tuple(Y.shape)}")
    if not bool(jnp.all(jnp.isfinite(Y))):
        raise BoltError("problem.target: f(X) contains NaN or inf")
    pb.Y = Y
    pb._r0 = float(pb.R0())
    return pb
