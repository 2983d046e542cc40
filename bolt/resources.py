"""What a run needs before it starts: memory (estimated from the config) and valid ranges of β, τ, sizes.

:func:`check_memory` adds up the large arrays a config will allocate — the input sample, a realizable
target's node network, the particles and draw buffers, the MFLD step keys, the grid, the log Z
proposal draws — and refuses, with the estimate and the memory available, a run that cannot fit.
:func:`check_ranges` refuses β and τ outside the range where float64 estimators are meaningful
(documented in docs/config.md, "Valid ranges") and particle counts too small for the estimators.
Both run before anything is allocated or written.
"""

from __future__ import annotations

import math
import os

from bolt.errors import ConfigError

__all__ = ["estimate_memory", "estimate_bridge_memory", "estimate_dynamics_memory", "available_memory",
           "check_memory", "check_items", "check_ranges", "format_bytes",
           "THETA_MAX", "REL_ROUNDOFF", "MIN_MFLD_PARTICLES", "MIN_DRAWS_PER_CHAIN"]

F64 = 8
#: a kernel block of bolt's chunked routes holds at most 2**22 entries (bolt._chunk); a few are live at once
WORKSPACE = 4 * (1 << 22) * F64
#: the relative round-off accepted in the free energy (see docs/config.md, "Valid ranges")
REL_ROUNDOFF = 1e-6
#: largest scale θ = (β/τ)·sqrt(R(γ_τ)) of the Gibbs exponent: KL and log Z subtract log-densities of
#: size θ, losing ε·θ; at 1e-6/ε ≈ 4.5e9 that loss reaches 1e-6
THETA_MAX = REL_ROUNDOFF / 2.220446049250313e-16
#: fewest MFLD particles: the KSD test and every standard error need several
MIN_MFLD_PARTICLES = 8
#: fewest draws per Picard chain per iteration (lag-one autocorrelation, ESS, split R-hat)
MIN_DRAWS_PER_CHAIN = 4
#: β and τ must lie in [1/BOUND, BOUND] so that β/τ, τ/β, 1/τ² and their products stay in float64
BOUND = 1e100


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def _input_dim(cfg: dict) -> int:
    pc = cfg["problem"]
    return pc["dim"] - 1 if pc["activation"] == "erf_bias" else pc["dim"]


def estimate_memory(cfg: dict, *, solve: bool = True) -> list[tuple[str, str, int]]:
    """``[(what, config key, bytes)]`` for the large arrays a resolved config allocates (float64).

    ``solve=False`` counts only what building the problem allocates (``bolt problem``).
    """
    pc, s, o = cfg["problem"], cfg["solver"], cfg["output"]
    d, p = pc["dim"], max(_input_dim(cfg), 1)
    t = pc["target"]
    closed = pc["activation"] == "erf" and pc["inputs"] == "gaussian" and t.get("kind") in (
        "teacher", "linear", "realizable")
    items = []
    if not closed and pc["inputs"] in ("gaussian", "sample"):
        n = pc["input_samples"]
        items.append((f"input sample ({n} x {p})", "problem.input_samples", 3 * n * p * F64))
        if t.get("kind") == "realizable" and pc["activation"] not in ("erf", "erf_bias"):
            m = int(t.get("nodes", 4096)) if isinstance(t.get("nodes", 4096), int) else 0
            items.append((f"realizable target ({m} nodes x {n} inputs)", "problem.target.nodes",
                          (m * n + 2 * m * d) * F64))
    elif pc["inputs"] == "data" and pc["data"]:
        try:
            items.append(("data file", "problem.data", 2 * os.path.getsize(pc["data"])))
        except OSError:
            pass
    if not solve:
        return items
    m = s["method"]
    if m.startswith("picard"):
        n, blocks = s["particles"], s["final_blocks"]
        field_rows = n * (s["buffer"] if closed else 1)
        items.append((f"particles and fields ({n} x {d}, buffer {s['buffer']})", "solver.particles",
                      (2 * field_rows + 3 * n) * d * F64))
        items.append((f"draws buffer ({s['chains']} chains x {n // max(s['chains'], 1) * blocks} draws x {d})",
                      "solver.particles", blocks * n * (2 * d + 6) * F64))
        items.append((f"log Z proposal draws ({s['logz_samples']} x {d})", "solver.logz_samples",
                      s["logz_samples"] * (2 * d + 4) * F64))
    elif m == "mfld":
        n = s["particles"]
        h = s["step_size"] or 0.02
        ratio = s["horizon"] / h / 40  # steps per block: bolt.gibbs.mfld.mfld_time_grid
        steps = max(1, math.ceil(ratio)) if ratio < 2**62 else 2**63
        items.append((f"particles ({n} x {d})", "solver.particles", 8 * n * d * F64))
        items.append((f"MFLD step keys ({steps} steps per block)", "solver.horizon", 2 * steps * 8))
        items.append((f"log Z proposal draws ({s['logz_samples']} x {d})", "solver.logz_samples",
                      s["logz_samples"] * (2 * d + 4) * F64))
    elif m == "grid" and d <= 2:
        pts = s["grid_points"] or {1: 801, 2: 61}[d]
        items.append((f"grid ({pts}^{d} nodes)", "solver.grid_points", pts**d * (d + 8) * F64))
    if o["target_rel_se"] > 0 and m != "grid":
        items.append((f"extra draws ({o['max_draws']} x {d})", "output.max_draws", o["max_draws"] * (2 * d + 6) * F64))
    return items


def available_memory() -> tuple[int | None, str]:
    """Bytes available for a run, and where that number comes from.

    On an accelerator the device's free memory (``memory_stats``) when it reports one, capped by the
    host's; on the host ``psutil`` when installed, else ``MemAvailable`` in ``/proc/meminfo``.
    ``BOLT_MEMORY_LIMIT`` (bytes) overrides both.
    """
    env = os.environ.get("BOLT_MEMORY_LIMIT")
    if env:
        try:
            value = float(env)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):  # inf and nan: one line, not an OverflowError
            raise ConfigError(f"BOLT_MEMORY_LIMIT: expected a finite number of bytes >= 0, got {env!r}")
        return int(value), "BOLT_MEMORY_LIMIT"
    host, source = None, ""
    try:
        import psutil  # type: ignore[import-not-found]

        host, source = int(psutil.virtual_memory().available), "available memory (psutil)"
    except ImportError:
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        host, source = int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
                        break
        except OSError:
            pass
    try:
        import jax

        if jax.default_backend() != "cpu":
            stats = jax.devices()[0].memory_stats() or {}
            if "bytes_limit" in stats:
                free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
                if host is None or free < host:
                    return free, f"free memory of {jax.devices()[0].device_kind}"
    except Exception:  # noqa: BLE001 — no accelerator statistics: the host's figure stands
        pass
    return host, source


def estimate_bridge_memory(d: int, particles: int, steps: int, inner: int) -> list[tuple[str, str, int]]:
    """``[(what, flag, bytes)]`` of ``bolt bridge``: the SDE's time grid and per-step statistics (``steps``),
    its paths at the save times and the bridge mixture's (``particles``), a block of importance draws
    (``inner``), the two-sample W2 matrices of the endpoint checks (exact OT up to 2000 points)."""
    n, k, m = int(particles), int(steps), int(inner)
    return [(f"time grid and per-step statistics ({k} steps)", "--steps", 12 * (k + 1) * F64),
            (f"paths ({n} x {d} at 9 save times, twice)", "--particles", 2 * 9 * n * d * F64 + 8 * n * F64),
            ("W2 cost matrices (exact up to 2000 points)", "--particles", 3 * min(n, 2000) ** 2 * F64),
            (f"importance draws of one position ({m} x {d})", "--inner", 4 * m * (d + 2) * F64)]


def estimate_dynamics_memory(dyn: dict, d: int, p: int, *, records: int = 50,
                             reference_samples: int = 4000) -> list[tuple[str, str, int]]:
    """``[(what, key, bytes)]`` of ``bolt dynamics`` for a checked ``[dynamics]`` table: the networks
    (``repetitions`` x ``particles`` x d), one step's minibatch and its activations, the per-step losses
    (``repetitions`` x ``steps``), the reference flow's bridge paths."""
    reps, n, b, k = int(dyn["repetitions"]), int(dyn["particles"]), int(dyn["minibatch"]), int(dyn["steps"])
    return [(f"networks ({reps} x {n} x {d})", "dynamics.particles", 8 * reps * n * d * F64),
            (f"minibatch activations ({reps} x {b} x ({p} + {n}))", "dynamics.minibatch", 3 * reps * b * (p + n) * F64),
            (f"per-step losses ({reps} x {k})", "dynamics.steps",
             2 * reps * k * F64 + 2 * (k // max(records, 1)) * F64),
            (f"reference flow ({reference_samples} bridge paths)", "--reference-samples",
             4 * int(reference_samples) * (d + 2) * max(records, 1) * F64)]


def check_memory(cfg: dict, *, solve: bool = True) -> int:
    """Refuse a config whose estimated memory exceeds what is available; returns the estimate (bytes)."""
    return check_items(estimate_memory(cfg, solve=solve))


def check_items(items: list[tuple[str, str, int]]) -> int:
    """Refuse the ``[(what, key, bytes)]`` of :func:`estimate_memory` (or ``estimate_bridge_memory``,
    ``estimate_dynamics_memory``) when they need more than is available; returns the estimate (bytes)."""
    total = sum(b for _, _, b in items) + WORKSPACE
    avail, source = available_memory()
    if avail is not None and total > avail:
        items.sort(key=lambda x: -x[2])
        parts = "; ".join(f"{what}: {format_bytes(b)}" for what, _, b in items[:3])
        raise ConfigError(f"{items[0][1]}: this run needs an estimated {format_bytes(total)} ({parts}), more than "
                          f"the {format_bytes(avail)} available ({source}); reduce {items[0][1]}")
    return total


def check_ranges(cfg: dict, problem) -> None:
    """β and τ in the estimators' float64 range, finite problem constants, enough particles (docs/config.md)."""
    s = cfg["solver"]
    beta, tau = problem.beta, problem.tau
    for key, v in (("beta", beta), ("tau", tau)):
        if not 1 / BOUND <= v <= BOUND:
            raise ConfigError(f"regularization.{key}: {v:g} is outside [{1 / BOUND:g}, {BOUND:g}] (float64 range "
                              f"of the estimators; docs/config.md, 'Valid ranges')")
    consts = problem.constants()
    for name in ("R0", "risk_at_prior", "L_sigma_squared", "kappa"):
        v = float(consts[name])
        if not math.isfinite(v) or abs(v) > 1e100:
            raise ConfigError(f"problem: the constant {name} is {v:g} (not finite): the target weights or data "
                              f"values overflow float64")
    rg = float(consts["risk_at_prior"])
    if rg > 0:
        theta = beta / tau * math.sqrt(rg)
        n = s["logz_samples"]
        lo = 2.220446049250313e-16 * math.log(max(n, 2)) / (REL_ROUNDOFF * rg) * math.sqrt(rg)
        if theta < lo:
            raise ConfigError(
                f"regularization.beta: beta/tau = {beta / tau:.3g} is so small that F's entropic term (tau/beta) KL "
                f"amplifies float64 round-off beyond {REL_ROUNDOFF:g} of the risk (need beta/tau >= "
                f"{lo / math.sqrt(rg):.3g} here; docs/config.md, 'Valid ranges')")
        if theta > THETA_MAX:
            raise ConfigError(
                f"regularization.beta: the Gibbs exponent's scale (beta/tau) sqrt(R(gamma_tau)) = {theta:.3g} exceeds "
                f"{THETA_MAX:.3g}: the log Z and KL estimators would lose more than {REL_ROUNDOFF:g} to round-off "
                f"(docs/config.md, 'Valid ranges')")
    m = s["method"]
    if m == "mfld" and s["particles"] < MIN_MFLD_PARTICLES:
        raise ConfigError(f"solver.particles: MFLD needs at least {MIN_MFLD_PARTICLES} particles for its "
                          f"estimators (KSD test, standard errors), got {s['particles']}")
    if m.startswith("picard") and s["particles"] // s["chains"] < MIN_DRAWS_PER_CHAIN:
        raise ConfigError(f"solver.particles: {s['particles']} particles in {s['chains']} chains leave "
                          f"{s['particles'] // s['chains']} draws per chain; the estimators need at least "
                          f"{MIN_DRAWS_PER_CHAIN} (raise solver.particles or lower solver.chains)")
