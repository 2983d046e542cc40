"""``bolt bridge RUN_DIR``: the path measure of a finished run (writes ``bridge.json`` and ``bridge.nc``)."""

from __future__ import annotations

__all__ = ["register", "print_bridge", "check_bridge_args"]


def print_bridge(out: dict, run_dir) -> None:
    """A table of the headline numbers and the verdicts."""
    s = out["settings"]
    print(f"bolt bridge — {run_dir}/bridge.json ({s['drift']} drift, {s['particles']} paths, "
          f"{s['steps_total']} steps)")
    rows = [("control energy", f"{out['control_energy']:.5g} ± {out['control_energy_se']:.2g}"),
            ("tau KL(mu*|gamma)", f"{out['tau_kl']:.5g} ± {out['tau_kl_se']:.2g}"),
            ("J(Föllmer)", f"{out['J']:.5g} ± {out['J_se']:.2g}"),
            ("beta F(mu*)", f"{out['beta_F']:.5g} ± {out['beta_F_se']:.2g}"),
            ("J(zero control)", f"{out['J_zero_control']:.5g}"),
            ("J(greedy)", f"{out['J_greedy']:.5g} ± {out['J_greedy_se']:.2g}"),
            ("endpoint W2^2", f"{out['endpoint_w2_squared']:.4g} (noise {out['endpoint_w2_noise']:.4g} "
                              f"± {out['endpoint_w2_noise_sd']:.2g})"),
            ("drift ESS min/mean", f"{out['ess']['min']:.3g} / {out['ess']['mean']:.3g}")]
    width = max(len(r[0]) for r in rows)
    for name, val in rows:
        print(f"  {name:<{width}}  {val}")
    print(f"  {'check':<26} {'outcome':<16} margin (SE)")
    for v in out["verdicts"]:
        m = v["margin_se"]
        print(f"  {v['name']:<26} {v['outcome']:<16} {'' if m is None else f'{m:+.2f}'}")


def check_bridge_args(args) -> int | None:
    """Refuse flags outside their range (one line naming the flag) and a run that cannot fit in memory,
    before any work; returns the seed (``--seed``, else the run's ``summary.json`` seed, else None)."""
    from pathlib import Path

    from bolt.config import check_seed, load_config
    from bolt.errors import ConfigError
    from bolt.resources import check_items, estimate_bridge_memory

    if args.particles < 10:
        raise ConfigError(f"--particles: need at least 10 paths, got {args.particles}")
    if args.steps < 1:
        raise ConfigError(f"--steps: must be at least 1, got {args.steps}")
    if args.drift == "potential" and (args.inner < 2 or args.inner % 2):
        raise ConfigError(f"--inner: the potential drift uses two independent halves of --inner draws: an even "
                          f"number >= 2, got {args.inner}")
    seed = args.seed
    run = Path(args.run_dir)
    if seed is None and (run / "summary.json").is_file():
        import json

        try:
            seed = json.loads((run / "summary.json").read_text()).get("seed")
        except (OSError, ValueError, AttributeError):
            seed = None  # the run loader reports an unreadable summary
        if seed is not None:
            seed = check_seed(seed, f"{run}/summary.json: seed")
    elif seed is not None:
        seed = check_seed(seed, "--seed")
    if (run / "config.toml").is_file():
        d = load_config(run / "config.toml")["problem"]["dim"]
        check_items(estimate_bridge_memory(d, args.particles, args.steps, args.inner))
    return seed


def _cmd_bridge(args) -> int:
    from bolt.commands import _locked
    from bolt.dynamics.bridge import evaluate_run

    seed = check_bridge_args(args)
    with _locked(args.run_dir, "bridge"):  # one writer per run directory
        out = evaluate_run(args.run_dir, particles=args.particles, steps=args.steps, drift=args.drift,
                           inner=args.inner, seed=seed, quiet=args.quiet)
    if not args.quiet:
        print_bridge(out, args.run_dir)
    return 0


def register(sub) -> None:
    """Add ``bridge`` to the CLI."""
    p = sub.add_parser("bridge", help="the path measure of a run (Föllmer SDE, bridge, control costs); "
                                      "writes RUN_DIR/bridge.json and bridge.nc")
    p.add_argument("run_dir", help="a directory written by bolt run")
    p.add_argument("--particles", type=int, default=1000, help="SDE paths (default 1000)")
    p.add_argument("--steps", type=int, default=100, help="time steps K of the grid 1-(1-k/K)^2 (default 100)")
    p.add_argument("--drift", choices=("potential", "samples"), default="potential",
                   help="Föllmer drift from the potential (importance sampling) or from the particles")
    p.add_argument("--inner", type=int, default=32,
                   help="importance draws per path and step (potential drift; even, >= 2: two halves)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the run's seed)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(func=_cmd_bridge)
