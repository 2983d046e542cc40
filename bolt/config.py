"""TOML configuration: the user-facing contract (documented in ``docs/config.md``).

Config files are data: parsed with :mod:`tomllib`, never executed. Unknown keys are errors.
:func:`load_config` returns a *resolved* config — a plain nested dict with every default filled
in — that :func:`dump_toml` writes back as ``config.toml`` in a run directory.
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

from bolt.errors import ConfigError

__all__ = ["DEFAULT_CONFIG", "SOLVER_METHODS", "load_config", "resolve_config", "dump_toml",
           "problem_from_config"]

SOLVER_METHODS = ("picard-nuts", "picard-mala", "mfld", "grid")
#: ``solver.tolerance`` of the grid solver when the config does not set it: its L1 tolerance ‖Γ(p) − p‖₁
GRID_TOLERANCE = 1e-12

#: The built-in default problem (see docs/config.md for why these β and τ).
DEFAULT_CONFIG: dict = {
    "problem": {
        "dim": 3,
        "activation": "erf",
        "inputs": "gaussian",
        "input_samples": 4096,
        "data": "",
        "seed": 0,
        "target": {
            "kind": "teacher",
            "weights": [[1.5, 0.0, 0.0], [0.0, 1.5, 0.0], [0.0, 0.0, 1.5]],
            "coefficients": [1.0, -0.5, 0.5],
        },
    },
    "regularization": {"beta": 1.0, "tau": 0.5},
    "solver": {
        "method": "picard-mala",
        "particles": 2000,
        "seed": 0,
        "damping": 0.7,
        "tolerance": 0.05,
        "max_iterations": 30,
        "min_iterations": 4,
        "chains": 40,
        "warmup": 500,
        "inner_steps": 5,
        "step_size": 0.0,
        "adapt": True,
        "horizon": 10.0,
        "buffer": 4,
        "grid_points": 0,
        "logz_samples": 100000,
        "kernel": "mala",
        "final_blocks": 5,
        "field_size": 1000,
        "field_cv": True,
        "devices": 1,
        "precision": "float64",
    },
    "output": {"report": True, "bounds": True, "bridge": False, "target_rel_se": 0.0, "max_draws": 32000},
}

_TARGET_KEYS = {
    "teacher": {"kind", "weights", "coefficients"},
    "linear": {"kind", "a"},
    "realizable": {"kind", "mean", "nodes"},
    "data": {"kind"},
}

_TYPES = {
    ("problem", "dim"): int, ("problem", "activation"): str, ("problem", "inputs"): str,
    ("problem", "input_samples"): int, ("problem", "data"): str, ("problem", "seed"): int,
    ("regularization", "beta"): float, ("regularization", "tau"): float,
    ("solver", "method"): str, ("solver", "particles"): int, ("solver", "seed"): int,
    ("solver", "damping"): float, ("solver", "tolerance"): float, ("solver", "max_iterations"): int,
    ("solver", "min_iterations"): int, ("solver", "chains"): int, ("solver", "warmup"): int,
    ("solver", "inner_steps"): int, ("solver", "step_size"): float, ("solver", "adapt"): bool,
    ("solver", "horizon"): float, ("solver", "buffer"): int, ("solver", "grid_points"): int,
    ("solver", "logz_samples"): int, ("solver", "kernel"): str, ("solver", "final_blocks"): int,
    ("solver", "field_size"): int, ("solver", "field_cv"): bool, ("solver", "devices"): int,
    ("solver", "precision"): str,
    ("output", "report"): bool, ("output", "bounds"): bool, ("output", "bridge"): bool,
    ("output", "target_rel_se"): float,
    ("output", "max_draws"): int,
}


# [dynamics]: bolt dynamics RUN_DIR (SGD and greedy McKean–Vlasov against µ*_t; docs/dynamics.md)
__all__ += ["DYNAMICS_KINDS", "check_dynamics", "check_seed"]
DYNAMICS_KINDS = ("sgd", "greedy", "both")
DEFAULT_CONFIG["dynamics"] = {"kind": "both", "particles": 500, "steps": 1000, "minibatch": 1, "repetitions": 8,
                              "seed": 0, "step_size": 0.0, "allow_any_horizon": False}
_TYPES.update({("dynamics", "kind"): str, ("dynamics", "particles"): int, ("dynamics", "steps"): int,
               ("dynamics", "minibatch"): int, ("dynamics", "repetitions"): int, ("dynamics", "seed"): int,
               ("dynamics", "step_size"): float, ("dynamics", "allow_any_horizon"): bool})


def check_dynamics(dyn: dict) -> dict:
    """Validate a ``[dynamics]`` table (also after CLI overrides); returns it with ``step_size`` resolved.

    ``step_size = 0`` means η = 1/steps; any other η needs ``η·steps = 1`` unless ``allow_any_horizon``.
    """
    if dyn["kind"] not in DYNAMICS_KINDS:
        raise ConfigError(f"dynamics.kind: expected one of {list(DYNAMICS_KINDS)}, got {dyn['kind']!r}")
    for key in ("particles", "steps", "minibatch", "repetitions"):
        if dyn[key] < 1:
            raise ConfigError(f"dynamics.{key}: must be at least 1, got {dyn[key]}")
    if not math.isfinite(dyn["step_size"]) or dyn["step_size"] < 0:  # NaN and inf arrive from --step-size
        raise ConfigError(f"dynamics.step_size: must be finite and >= 0 (0: 1/steps), got {dyn['step_size']}")
    for key in ("particles", "steps", "minibatch", "repetitions", "seed"):
        _check_type(f"dynamics.{key}", dyn[key], int)  # a --seed of 2**70: one line, not an OverflowError
    eta = dyn["step_size"] or 1.0 / dyn["steps"]
    if abs(eta * dyn["steps"] - 1.0) > 1e-9 and not dyn["allow_any_horizon"]:
        raise ConfigError(f"dynamics.step_size: step_size * steps = {eta * dyn['steps']:.6g}, but the theory "
                          f"needs eta * n = 1; set dynamics.allow_any_horizon = true (--allow-any-horizon) to run it")
    return dict(dyn, step_size=float(eta))


def check_seed(value, path: str = "seed") -> int:
    """A seed must be an integer in the signed 64-bit range (a PRNG key holds no more); returns it."""
    return _check_type(path, value, int)


def _check_type(path: str, value, typ):
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        if not -(2**63) <= value < 2**63:
            raise ConfigError(f"{path}: {value} is beyond the 64-bit integer range")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: must be finite, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def _resolve_target(value) -> dict:
    if not isinstance(value, dict):
        raise ConfigError("problem.target: must be a table")
    kind = value.get("kind", "teacher")
    if not isinstance(kind, str) or kind not in _TARGET_KEYS:
        raise ConfigError(f"problem.target.kind: unknown target kind {kind!r}; "
                          f"expected one of {sorted(_TARGET_KEYS)}")
    for k in value:
        if k not in _TARGET_KEYS[kind]:
            raise ConfigError(f"problem.target.{k}: unknown key for target kind {kind!r}")
    if "nodes" in value:
        _check_type("problem.target.nodes", value["nodes"], int)
    return dict(value, kind=kind)


def _check_problem_keys(pc: dict) -> None:
    if pc["dim"] < 1:
        raise ConfigError(f"problem.dim: must be at least 1, got {pc['dim']}")
    if pc["activation"] == "erf_bias" and pc["dim"] < 2:
        raise ConfigError(f"problem.dim: activation 'erf_bias' needs dim >= 2 (w = (b, w')), got {pc['dim']}")


def resolve_config(raw: dict | None) -> dict:
    """Validate a raw config dict and fill in defaults. Unknown keys raise :class:`ConfigError`."""
    raw = {} if raw is None else raw
    out = copy.deepcopy(DEFAULT_CONFIG)
    for section, body in raw.items():
        if section not in DEFAULT_CONFIG:
            raise ConfigError(f"{section}: unknown section (expected one of {sorted(DEFAULT_CONFIG)})")
        if not isinstance(body, dict):
            raise ConfigError(f"{section}: must be a table")
        for key, value in body.items():
            path = f"{section}.{key}"
            if section == "problem" and key == "target":
                out["problem"]["target"] = _resolve_target(value)
                continue
            if (section, key) not in _TYPES:
                raise ConfigError(f"{path}: unknown key")
            out[section][key] = _check_type(path, value, _TYPES[(section, key)])
    s = out["solver"]
    _check_problem_keys(out["problem"])
    if s["method"] not in SOLVER_METHODS:
        raise ConfigError(f"solver.method: unknown method {s['method']!r}; expected one of {list(SOLVER_METHODS)}")
    if s["kernel"] not in ("mala", "ula"):
        raise ConfigError(f"solver.kernel: expected 'mala' or 'ula', got {s['kernel']!r}")
    for key in ("particles", "max_iterations", "chains", "inner_steps"):
        if s[key] < 1:
            raise ConfigError(f"solver.{key}: must be at least 1, got {s[key]}")
    if s["logz_samples"] < 2:  # the log Z estimate's standard error needs two draws (checked before the solve)
        raise ConfigError(f"solver.logz_samples: must be at least 2, got {s['logz_samples']}")
    if s["method"] == "grid" and "tolerance" not in (raw.get("solver") or {}):
        s["tolerance"] = GRID_TOLERANCE  # the grid's own default: an L1 tolerance at round-off level
    if s["final_blocks"] < 1:
        raise ConfigError(f"solver.final_blocks: must be at least 1, got {s['final_blocks']}")
    if s["warmup"] < 0 or s["min_iterations"] < 0 or s["grid_points"] < 0:
        raise ConfigError("solver.warmup, solver.min_iterations and solver.grid_points must be >= 0")
    if s["field_size"] < 0:
        raise ConfigError(f"solver.field_size: must be >= 0 (0: the whole buffer), got {s['field_size']}")
    if s["devices"] < 0:
        raise ConfigError(f"solver.devices: must be >= 0 (0: all available devices, 1: no sharding), "
                          f"got {s['devices']}")
    if s["precision"] not in ("float64", "float32"):
        raise ConfigError(f"solver.precision: expected 'float64' or 'float32', got {s['precision']!r}")
    if s["precision"] == "float32" and s["method"] != "mfld":
        raise ConfigError("solver.precision: 'float32' is implemented for method = 'mfld' only")
    if s["buffer"] < 2:
        raise ConfigError(f"solver.buffer: must be at least 2, got {s['buffer']}")
    if not 0.0 < s["damping"] <= 1.0:
        raise ConfigError(f"solver.damping: must be in (0, 1], got {s['damping']}")
    if s["tolerance"] <= 0 or s["horizon"] <= 0 or s["step_size"] < 0:
        raise ConfigError("solver.tolerance and solver.horizon must be > 0, solver.step_size >= 0")
    if s["method"] == "grid" and s["tolerance"] >= 2:
        raise ConfigError(f"solver.tolerance: the grid's L1 tolerance must be in (0, 2) (the L1 distance of two "
                          f"probability vectors is at most 2), got {s['tolerance']}")
    if s["method"] != "grid" and s["tolerance"] >= 1:
        raise ConfigError(f"solver.tolerance: the significance level of the fixed-point test must be in (0, 1), "
                          f"got {s['tolerance']}")
    if not 0.0 <= out["output"]["target_rel_se"] < 1.0:
        raise ConfigError(f"output.target_rel_se: must be in [0, 1), got {out['output']['target_rel_se']}")
    if out["output"]["max_draws"] < 1:
        raise ConfigError(f"output.max_draws: must be at least 1, got {out['output']['max_draws']}")
    if s["particles"] % s["chains"] and s["method"].startswith("picard"):
        raise ConfigError(f"solver.particles: {s['particles']} is not a multiple of solver.chains = {s['chains']}")
    split = "chains" if s["method"].startswith("picard") else "particles"
    if s["devices"] > 1 and s["method"] != "grid" and s[split] % s["devices"]:
        raise ConfigError(f"solver.{split}: {s[split]} is not a multiple of solver.devices = {s['devices']}")
    for key in ("beta", "tau"):
        if out["regularization"][key] <= 0:
            raise ConfigError(f"regularization.{key}: must be > 0, got {out['regularization'][key]}")
    check_dynamics(out["dynamics"])
    return out


def load_config(path: str | Path | None) -> dict:
    """Read and resolve a TOML config; ``None`` gives the built-in default problem."""
    if path is None:
        return resolve_config({})
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config: file not found: {p}")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8-sig"))  # a UTF-8 byte-order mark is accepted
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: {p} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config: {p} nests arrays or tables too deeply to read") from None
    except OSError as exc:
        raise ConfigError(f"config: cannot read {p}: {exc.strerror or exc}") from None
    cfg = resolve_config(raw)
    data = cfg["problem"]["data"]
    if data and not Path(data).is_absolute():
        cfg["problem"]["data"] = str((p.parent / data).resolve())
    return cfg


def problem_from_config(cfg: dict):
    """Build the :class:`~bolt.problem.Problem` described by a resolved config."""
    from bolt.problem import (
        DataTarget,
        GaussianInputs,
        Linear,
        Realizable,
        SampleInputs,
        Teacher,
        load_data,
        make_problem,
    )

    pc = cfg["problem"]
    kind = pc["inputs"]
    if kind == "gaussian":
        inputs = GaussianInputs(samples=pc["input_samples"])
    elif kind == "sample":
        inputs = SampleInputs(samples=pc["input_samples"])
    elif kind == "data":
        if not pc["data"]:
            raise ConfigError("problem.data: inputs = 'data' needs a data file path")
        inputs = load_data(pc["data"])
    else:
        raise ConfigError(f"problem.inputs: unknown input law {kind!r}; expected 'gaussian', 'sample' or 'data'")
    t = pc["target"]
    tk = t["kind"]
    try:
        if tk == "teacher":
            if "weights" not in t:
                raise ConfigError("problem.target.weights: required for a teacher target")
            target = Teacher(t["weights"], t.get("coefficients"))
        elif tk == "linear":
            if "a" not in t:
                raise ConfigError("problem.target.a: required for a linear target")
            target = Linear(t["a"])
        elif tk == "realizable":
            if "mean" not in t:
                raise ConfigError("problem.target.mean: required for a realizable target")
            target = Realizable(t["mean"], nodes=t.get("nodes", 4096))
        else:
            target = DataTarget()
    except ConfigError:
        raise
    except Exception as exc:  # BoltError from validation keeps its field name
        raise ConfigError(str(exc)) from None
    r = cfg["regularization"]
    return make_problem(pc["activation"], target, dim=pc["dim"], inputs=inputs,
                        beta=r["beta"], tau=r["tau"], seed=pc["seed"])


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(cfg: dict) -> str:
    """Serialise a resolved config (nested tables of scalars and arrays) as TOML."""
    lines: list[str] = []

    def table(prefix: str, body: dict):
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", cfg)
    return "\n".join(lines).lstrip("\n")
