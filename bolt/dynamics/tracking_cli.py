"""``bolt dynamics RUN_DIR``: SGD and greedy McKean–Vlasov against µ*_t (writes ``dynamics.json``, ``dynamics.nc``)."""

from __future__ import annotations

__all__ = ["register", "print_dynamics", "check_dynamics_args"]


def _fmt(x, se=None) -> str:
    if x is None:
        return "—"
    return f"{x:.5g}" + ("" if se is None else f" ± {se:.2g}")


def print_dynamics(out: dict, run_dir) -> None:
    """A table of the headline numbers and the verdicts."""
    s = out["settings"]
    print(f"bolt dynamics — {run_dir}/dynamics.json ({s['kind']}, N = {s['particles']}, n = {s['steps']} steps, "
          f"eta = {s['step_size']:.4g}, {s['repetitions']} repetitions)")
    rows = [("R(mu*_t) at t = 0, 1", f"{_fmt(out['reference_risk_start'], out['reference_risk_start_se'])}, "
                                     f"{_fmt(out['reference_risk_end'], out['reference_risk_end_se'])}"),
            ("max_k |R_N(W_k) - R(mu*_k eta)|", _fmt(out["deviation"], out["deviation_se"])),
            ("  frozen network W_k = W_0", _fmt(out["frozen_deviation"], out["frozen_deviation_se"])),
            ("  greedy McKean-Vlasov", _fmt(out["greedy_deviation"], out["greedy_deviation_se"])),
            ("R_N at the end: SGD, greedy", f"{_fmt(out['sgd_risk_end'], out['sgd_risk_end_se'])}, "
                                            f"{_fmt(out['greedy_risk_end'], out['greedy_risk_end_se'])}"),
            ("J(greedy)", _fmt(out["greedy_J"], out["greedy_J_se"])),
            ("beta F(mu*)", _fmt(out["beta_F"], out["beta_F_se"])),
            ("greedy endpoint W2^2 to mu*", _fmt(out["greedy_w2_squared"]) + (
                "" if out["greedy_w2_noise"] is None else f" (two-sample noise {out['greedy_w2_noise']:.3g})"))]
    width = max(len(r[0]) for r in rows)
    for name, val in rows:
        print(f"  {name:<{width}}  {val}")
    for v in out["verdicts"]:
        m = v["margin_se"]
        print(f"  {v['name']:<26} {v['outcome']:<16} {'' if m is None else f'{m:+.2f} SE'}")


def check_dynamics_args(args, overrides: dict) -> None:
    """Refuse flags outside their range and a run that cannot fit in memory, before any work (one line
    naming the flag or key): the run's ``[dynamics]`` with the flags over it, as ``bolt dynamics`` runs it."""
    from pathlib import Path

    from bolt.config import check_dynamics, load_config
    from bolt.errors import ConfigError
    from bolt.resources import check_items, estimate_dynamics_memory

    for flag, value, least in (("--records", args.records, 1), ("--reference-samples", args.reference_samples, 10),
                               ("--greedy-steps", args.greedy_steps, 1)):
        if value is not None and value < least:
            raise ConfigError(f"{flag}: must be at least {least}, got {value}")
    config = Path(args.run_dir) / "config.toml"
    if not config.is_file():
        return  # bolt.dynamics.tracking.evaluate_run names the missing run
    cfg = load_config(config)
    dyn = dict(cfg["dynamics"], **{k: v for k, v in overrides.items() if v is not None})
    settings = check_dynamics(dyn)
    pc = cfg["problem"]
    p = pc["dim"] - 1 if pc["activation"] == "erf_bias" else pc["dim"]
    check_items(estimate_dynamics_memory(settings, pc["dim"], max(p, 1), records=args.records,
                                         reference_samples=args.reference_samples))


def _cmd_dynamics(args) -> int:
    from bolt.commands import _locked
    from bolt.dynamics.tracking import evaluate_run

    overrides = {"kind": args.kind, "particles": args.particles, "steps": args.steps, "minibatch": args.minibatch,
                 "repetitions": args.repetitions, "seed": args.seed, "step_size": args.step_size,
                 "allow_any_horizon": True if args.allow_any_horizon else None}
    check_dynamics_args(args, overrides)
    with _locked(args.run_dir, "dynamics"):  # one writer per run directory
        out = evaluate_run(args.run_dir, overrides=overrides, records=args.records,
                           reference_samples=args.reference_samples, greedy_steps=args.greedy_steps,
                           quiet=args.quiet)
    if not args.quiet:
        print_dynamics(out, args.run_dir)
    return 0


def register(sub) -> None:
    """Add ``dynamics`` to the CLI."""
    p = sub.add_parser("dynamics", help="online SGD and greedy McKean-Vlasov against the optimal flow mu*_t; "
                                        "writes RUN_DIR/dynamics.json and dynamics.nc")
    p.add_argument("run_dir", help="a directory written by bolt run")
    p.add_argument("--kind", choices=("sgd", "greedy", "both"), default=None, help="dynamics to run ([dynamics] kind)")
    p.add_argument("--particles", type=int, default=None, help="width N ([dynamics] particles)")
    p.add_argument("--steps", type=int, default=None, help="SGD steps n ([dynamics] steps)")
    p.add_argument("--step-size", type=float, default=None, help="eta (default 1/steps; [dynamics] step_size)")
    p.add_argument("--allow-any-horizon", action="store_true", help="allow eta * steps != 1")
    p.add_argument("--minibatch", type=int, default=None, help="inputs per SGD step ([dynamics] minibatch)")
    p.add_argument("--repetitions", type=int, default=None, help="independent runs ([dynamics] repetitions)")
    p.add_argument("--seed", type=int, default=None, help="seed ([dynamics] seed)")
    p.add_argument("--records", type=int, default=50, help="R_N is recorded every ceil(steps/records) steps")
    p.add_argument("--reference-samples", type=int, default=4000, help="bridge paths for R(mu*_t) (default 4000)")
    p.add_argument("--greedy-steps", type=int, default=None, help="Euler steps of the greedy SDE (min(steps, 200))")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(func=_cmd_dynamics)
