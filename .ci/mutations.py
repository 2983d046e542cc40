#!/usr/bin/env python3
"""Mutation check: every planted one-line bug in ``.ci/mutations.toml`` must make its tests fail.

Each ``[[mutation]]`` names a ``file``, an ``old`` text that must occur there exactly once, its
replacement ``new``, the ``tests`` that must catch it (pytest node ids or paths; an item
``"-k EXPR"`` is passed as ``-k EXPR``) and ``why`` (the bug it models). For each mutation the
script copies the repository (tracked and untracked-but-not-ignored files; a plain copy outside
git) into a temporary directory, applies the replacement, checks that the copy's package is the
one imported, and runs ``python -m pytest -q -x -p no:cacheprovider <tests>`` there:

- pytest exit 1 (a test failed): **caught**;
- exit 0: **SURVIVED** — the tests cannot see this bug;
- any other exit (usage error, collection error, no test selected, interrupted) or a timeout:
  **error**, never counted as caught.

The runs share one JAX compilation cache (``BOLT_CACHE_DIR``, a temporary directory unless set): a
mutated traced computation lowers to a different program, which is a different cache key.

Before the mutations, the union of their tests runs once on the unmutated copy and must pass
(otherwise a "caught" would mean nothing); ``--no-baseline`` skips it.

``[[uncaught]]`` entries are bugs no current test catches, kept with a description of the test
that would; their ``old`` text is checked like the others (so the list cannot silently go stale)
but they are not run unless ``--uncaught`` is given (then they are expected to survive, and one
that is now caught is reported so that it can be promoted to ``[[mutation]]``).

The script exits non-zero when a mutation survived or errored, when the baseline fails, or when
any ``old`` text is not found exactly once. ``--fast`` runs the entries marked ``fast = true``
(the subset ``.ci/run`` uses). ``--share K/N`` keeps every N-th of the selected entries from the K-th on
(K in 0..N-1, in list order); ``--share auto/N`` takes K as the number of commits reachable from HEAD modulo
N, so CI runs a deterministic share that rotates as commits land, and N consecutive commits cover the list.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED = ("id", "file", "old", "new", "tests", "why")
IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
                                ".ruff_cache", ".venv", "runs", "bolt-run")


class ConfigError(Exception):
    """The mutation list is malformed or out of date with the code."""


@dataclass
class Mutation:
    id: str
    file: str
    old: str
    new: str
    tests: list[str]
    why: str
    fast: bool = False
    timeout: float = 600.0
    uncaught: bool = False
    extra: dict = field(default_factory=dict)

    def pytest_args(self) -> list[str]:
        args: list[str] = []
        for t in self.tests:
            t = t.strip()
            if t.startswith(("-k", "-m")):  # a -k expression, or -m to select a marker (e.g. slow tests)
                args += [t[:2], t[2:].strip()]
            else:
                args.append(t)
        return args


@dataclass
class Outcome:
    mutation: Mutation
    status: str  # caught / SURVIVED / error / still-uncaught / NOW-CAUGHT
    seconds: float
    detail: str = ""


def load(config: Path) -> tuple[str, list[Mutation]]:
    """The package name and the mutations (``[[mutation]]`` then ``[[uncaught]]``) of ``config``."""
    with open(config, "rb") as fh:
        data = tomllib.load(fh)
    package = data.get("package", "bolt")
    out, seen = [], set()
    for table, uncaught in (("mutation", False), ("uncaught", True)):
        for i, raw in enumerate(data.get(table, [])):
            missing = [k for k in REQUIRED if k not in raw and not (uncaught and k == "tests")]
            if missing:
                raise ConfigError(f"{config}: [[{table}]] #{i + 1} ({raw.get('id', '?')}) lacks {', '.join(missing)}")
            if raw["id"] in seen:
                raise ConfigError(f"{config}: duplicate id {raw['id']!r}")
            seen.add(raw["id"])
            tests = raw.get("tests", [])
            if isinstance(tests, str) or not all(isinstance(t, str) for t in tests):
                raise ConfigError(f"{config}: {raw['id']}: tests must be a list of strings")
            if not uncaught and not tests:
                raise ConfigError(f"{config}: {raw['id']}: tests is empty")
            if raw["old"] == raw["new"]:
                raise ConfigError(f"{config}: {raw['id']}: old and new are identical")
            known = set(REQUIRED) | {"fast", "timeout", "suggested_test"}
            out.append(Mutation(raw["id"], raw["file"], raw["old"], raw["new"], list(tests), raw["why"],
                                bool(raw.get("fast", False)), float(raw.get("timeout", 600.0)), uncaught,
                                {k: v for k, v in raw.items() if k not in known}))
    return package, out


def check_targets(root: Path, mutations: list[Mutation]) -> list[str]:
    """Problems with the ``old`` texts: each must occur exactly once in its file."""
    problems = []
    for m in mutations:
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.id}: {m.file} does not exist")
            continue
        n = path.read_text().count(m.old)
        if n != 1:
            problems.append(f"{m.id}: `old` occurs {n} times in {m.file} (must be exactly once): {m.old!r}")
    return problems


def repo_files(root: Path) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files, or ``None`` outside a git work tree."""
    try:
        r = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                           capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return [f for f in r.stdout.decode().split("\0") if f and (root / f).is_file()]


def make_copy(root: Path, dest: Path) -> None:
    files = repo_files(root)
    if files is None:
        shutil.copytree(root, dest, ignore=IGNORE, dirs_exist_ok=True)
        return
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, dest / f)


def env_for(copy: Path) -> dict:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # the copy first, also for subprocesses the tests start (e.g. the CLI)
    env["PYTHONPATH"] = os.pathsep.join([str(copy)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTEST_ADDOPTS", None)
    return env


def check_import(copy: Path, package: str) -> None:
    """Fail unless ``import <package>`` in the copy resolves to the copy's package."""
    r = subprocess.run([sys.executable, "-c", f"import {package}; print({package}.__file__)"], cwd=copy,
                       env=env_for(copy), capture_output=True, text=True)
    where = r.stdout.strip()
    if r.returncode != 0 or not where:
        raise RuntimeError(f"import {package} fails in the copy {copy}:\n{r.stderr[-2000:]}")
    if not Path(where).resolve().is_relative_to(copy.resolve()):
        raise RuntimeError(f"import {package} in the copy resolves to {where}, outside {copy}: "
                           "mutations would not be tested")


def run_pytest(copy: Path, args: list[str], timeout: float) -> tuple[int | None, str, float]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args]
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, cwd=copy, env=env_for(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        return None, out, time.monotonic() - t0
    return r.returncode, r.stdout + r.stderr, time.monotonic() - t0


def _first(text: str, prefixes: tuple[str, ...]) -> str:
    for line in text.splitlines():
        if line.startswith(prefixes):
            return line.strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def apply_and_run(copy: Path, m: Mutation) -> Outcome:
    path = copy / m.file
    original = path.read_text()
    if original.count(m.old) != 1:  # checked up front; kept as a guard for the copy
        return Outcome(m, "error", 0.0, f"`old` occurs {original.count(m.old)} times in the copy")
    try:
        mutated = original.replace(m.old, m.new)
        path.write_text(mutated)
        if path.suffix == ".py":  # a syntax error would fail every test: that is not a catch
            try:
                compile(mutated, str(path), "exec")
            except SyntaxError as e:
                return Outcome(m, "error", 0.0, f"mutated file does not compile: {e}")
        rc, out, secs = run_pytest(copy, m.pytest_args(), m.timeout)
    finally:
        path.write_text(original)
    if rc is None:
        status, detail = "error", f"timed out after {m.timeout:.0f} s"
    elif rc == 1:
        status, detail = "caught", _first(out, ("FAILED", "ERROR"))
    elif rc == 0:
        status, detail = "SURVIVED", _first(out, ("=",)) or out.strip().splitlines()[-1:]
    else:
        status, detail = "error", f"pytest exit {rc}: {_first(out, ('ERROR', 'no tests ran', 'E '))}"
    if m.uncaught:
        status = {"SURVIVED": "still-uncaught", "caught": "NOW-CAUGHT"}.get(status, status)
    return Outcome(m, status, secs, str(detail))


def print_table(outcomes: list[Outcome]) -> None:
    w = max([len(o.mutation.id) for o in outcomes] + [2])
    print(f"\n{'id':<{w}}  {'result':<14} {'seconds':>7}  detail")
    for o in outcomes:
        print(f"{o.mutation.id:<{w}}  {o.status:<14} {o.seconds:7.1f}  {o.detail[:160]}")


def share_of(spec: str, root: Path) -> tuple[int, int]:
    """``K/N`` of ``--share`` as integers; ``auto/N`` takes K = (commits reachable from HEAD) mod N."""
    k_s, sep, n_s = spec.partition("/")
    if not sep or not n_s.isdigit() or int(n_s) < 1:
        raise ConfigError(f"--share {spec!r}: expected K/N with N >= 1 (K an integer or 'auto')")
    n = int(n_s)
    if k_s == "auto":
        r = subprocess.run(["git", "-C", str(root), "rev-list", "--count", "HEAD"], capture_output=True, text=True)
        if r.returncode != 0 or not r.stdout.strip().isdigit():
            raise ConfigError(f"--share auto: cannot count the commits of {root}: {r.stderr.strip()}")
        return int(r.stdout) % n, n
    if not k_s.isdigit() or int(k_s) >= n:
        raise ConfigError(f"--share {spec!r}: K must be an integer in 0..{n - 1} or 'auto'")
    return int(k_s), n


def main(argv=None) -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", type=Path, default=here / "mutations.toml", help="the mutation list (TOML)")
    p.add_argument("--root", type=Path, default=here.parent, help="repository root")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--only", action="append", default=[], metavar="ID", help="run only this mutation (repeatable)")
    p.add_argument("--fast", action="store_true", help="run only the entries marked fast = true")
    p.add_argument("--uncaught", action="store_true", help="also run the [[uncaught]] entries (expected to survive)")
    p.add_argument("--jobs", type=int, default=1, help="parallel copies (default 1)")
    p.add_argument("--share", default="", metavar="K/N",
                   help="run every N-th selected entry from the K-th (K = auto: commits on HEAD mod N)")
    p.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the selected tests")
    a = p.parse_args(argv)
    root = a.root.resolve()

    try:
        package, mutations = load(a.config)
    except (ConfigError, tomllib.TOMLDecodeError, OSError) as e:
        print(f"mutations: {e}", file=sys.stderr)
        return 2
    problems = check_targets(root, mutations)
    unknown = set(a.only) - {m.id for m in mutations}
    if unknown:
        problems.append(f"--only: no mutation with id {', '.join(sorted(unknown))}")
    if a.list:
        for m in mutations:
            tag = "uncaught" if m.uncaught else ("fast" if m.fast else "")
            print(f"{m.id:<32} {tag:<8} {m.file}: {m.why}")
            if m.tests:
                print(f"{'':<41} tests: {' '.join(shlex.quote(t) for t in m.tests)}")
    if problems:
        print("mutations: the list is out of date with the code:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if a.list:
        return 0

    selected = [m for m in mutations if (a.uncaught or not m.uncaught) and (not a.fast or m.fast or m.uncaught)
                and (not a.only or m.id in a.only)]
    selected = [m for m in selected if m.tests]
    if a.share:
        try:
            k, n = share_of(a.share, root)
        except ConfigError as e:
            print(f"mutations: {e}", file=sys.stderr)
            return 2
        print(f"mutations: share {k}/{n} of {len(selected)}", flush=True)
        selected = selected[k::n]
    if not selected:
        print("mutations: nothing selected", file=sys.stderr)
        return 2
    jobs = max(1, min(a.jobs, len(selected)))
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        # one compilation cache for every run (the tests would each start an empty one): a mutation that
        # changes a traced computation changes its program, hence its cache key, so a hit is always the
        # program the mutated code would compile
        os.environ.setdefault("BOLT_CACHE_DIR", str(Path(tmp) / "jax-cache"))
        copies = [Path(tmp) / f"copy{j}" for j in range(jobs)]
        for c in copies:
            c.mkdir()
            make_copy(root, c)
            check_import(c, package)
        print(f"mutations: {len(selected)} selected; copies of {root} under {tmp}; import {package} -> copy",
              flush=True)
        if not a.no_baseline:
            union: list[str] = []
            for m in selected:
                if m.uncaught:
                    continue
                for t in m.pytest_args():
                    if t not in union or t == "-k":
                        union.append(t)
            if "-k" in union:  # -k expressions do not combine across entries: baseline each such entry alone
                groups = [m.pytest_args() for m in selected if not m.uncaught]
            else:
                groups = [union] if union else []
            for g in groups:
                rc, out, secs = run_pytest(copies[0], g, 1800.0)
                print(f"baseline (unmutated, {secs:.1f} s): pytest exit {rc}", flush=True)
                if rc != 0:
                    print(out[-4000:], file=sys.stderr)
                    print("mutations: the selected tests do not pass on the unmutated code", file=sys.stderr)
                    return 1

        def worker(j):
            res = []
            for m in selected[j::jobs]:
                try:
                    o = apply_and_run(copies[j], m)
                except Exception as e:  # a harness failure is reported, never taken for a catch
                    o = Outcome(m, "error", 0.0, f"harness: {type(e).__name__}: {e}")
                print(f"  {o.mutation.id}: {o.status} ({o.seconds:.1f} s)", flush=True)
                res.append(o)
            return res

        with ThreadPoolExecutor(jobs) as ex:
            results = [o for r in ex.map(worker, range(jobs)) for o in r]
    order = {m.id: i for i, m in enumerate(selected)}
    results.sort(key=lambda o: order[o.mutation.id])
    print_table(results)
    bad = [o for o in results if o.status not in ("caught", "still-uncaught")]
    print(f"\nmutations: {sum(o.status == 'caught' for o in results)} caught, "
          f"{sum(o.status == 'SURVIVED' for o in results)} survived, {sum(o.status == 'error' for o in results)} "
          f"errors, {sum(o.status == 'NOW-CAUGHT' for o in results)} uncaught entries now caught; "
          f"{time.monotonic() - t_start:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
