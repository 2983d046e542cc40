""".ci/mutations.py on a toy package: a caught mutation passes, a surviving one fails, and a stale
list (``old`` text not found exactly once) or a pytest usage error fails loudly, never as "caught"."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "mutations.py"


@pytest.fixture
def toy(tmp_path):
    root = tmp_path / "toy_repo"
    (root / "toy").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "toy" / "__init__.py").write_text("def add(a, b):\n    return a + b\n\n\ndef untested():\n    return 1\n")
    (root / "tests" / "test_toy.py").write_text("from toy import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    return root


def _run(root, entries: str, *args):
    cfg = root.parent / "mutations.toml"
    cfg.write_text('package = "toy"\n' + textwrap.dedent(entries))
    return subprocess.run([sys.executable, str(SCRIPT), "--config", str(cfg), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=300)


CAUGHT = """
[[mutation]]
id = "add-minus"
file = "toy/__init__.py"
old = "return a + b"
new = "return a - b"
tests = ["tests/test_toy.py::test_add"]
why = "subtracts"
fast = true
"""


def test_caught_mutation_passes_and_original_is_restored(toy):
    before = (toy / "toy" / "__init__.py").read_text()
    r = _run(toy, CAUGHT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "add-minus" in r.stdout and "caught" in r.stdout and "test_add" in r.stdout
    assert (toy / "toy" / "__init__.py").read_text() == before  # the repository itself is never edited


def test_surviving_mutation_fails(toy):
    r = _run(toy, CAUGHT + """
[[mutation]]
id = "untested-two"
file = "toy/__init__.py"
old = "return 1"
new = "return 2"
tests = ["tests/test_toy.py::test_add"]
why = "nothing tests untested()"
""")
    assert r.returncode == 1
    assert "SURVIVED" in r.stdout and "1 survived" in r.stdout


@pytest.mark.parametrize("old, count", [("return a * b", 0), ("return", 2)])
def test_old_text_not_found_exactly_once_fails_before_running(toy, old, count):
    r = _run(toy, CAUGHT.replace('old = "return a + b"', f'old = "{old}"'))
    assert r.returncode == 2
    assert f"occurs {count} times" in r.stderr and "baseline" not in r.stdout


def test_stale_uncaught_entry_fails_too(toy):
    r = _run(toy, CAUGHT + """
[[uncaught]]
id = "gone"
file = "toy/__init__.py"
old = "return a / b"
new = "return b / a"
why = "text no longer in the file"
suggested_test = "none"
""", "--list")
    assert r.returncode == 2 and "gone" in r.stderr


def test_pytest_usage_error_is_an_error_not_caught(toy):
    r = _run(toy, CAUGHT.replace("tests/test_toy.py::test_add", "tests/test_toy.py::test_missing"), "--no-baseline")
    assert r.returncode == 1
    assert "pytest exit 4" in r.stdout and "0 caught" in r.stdout and "1 errors" in r.stdout


def test_only_and_fast_select(toy):
    r = _run(toy, CAUGHT + CAUGHT.replace("add-minus", "add-times").replace("a - b", "a * b")
             .replace("fast = true", "fast = false"), "--fast")
    assert r.returncode == 0 and "add-minus" in r.stdout and "add-times" not in r.stdout
    r = _run(toy, CAUGHT, "--only", "nope")
    assert r.returncode == 2 and "nope" in r.stderr


def test_mutation_that_does_not_compile_is_an_error(toy):
    r = _run(toy, CAUGHT.replace('new = "return a - b"', 'new = "return a -"'), "--no-baseline")
    assert r.returncode == 1 and "does not compile" in r.stdout and "0 caught" in r.stdout


def test_share_runs_every_nth_entry_from_the_kth(toy):
    entries = "".join(CAUGHT.replace("add-minus", f"add-{i}") for i in range(5))
    r = _run(toy, entries, "--share", "1/2", "--no-baseline")
    assert r.returncode == 0, r.stdout + r.stderr
    ran = {i for i in range(5) if f"add-{i}:" in r.stdout}
    assert ran == {1, 3} and "share 1/2 of 5" in r.stdout
    for bad in ("2/2", "x/2", "1/0", "1"):
        r = _run(toy, CAUGHT, "--share", bad)
        assert r.returncode == 2 and "--share" in r.stderr


def test_share_auto_counts_the_commits(toy):
    git = ["git", "-C", str(toy), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    for i in range(3):
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", f"c{i}"], check=True)
    entries = "".join(CAUGHT.replace("add-minus", f"add-{i}") for i in range(4))
    r = _run(toy, entries, "--share", "auto/2", "--no-baseline")
    assert r.returncode == 0 and "share 1/2 of 4" in r.stdout  # 3 commits: 3 mod 2 = 1
    assert "add-1:" in r.stdout and "add-3:" in r.stdout and "add-0:" not in r.stdout
