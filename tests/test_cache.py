"""The persistent compilation cache the ``bolt`` command turns on (bolt/cache.py)."""

import os
import subprocess
import sys
from pathlib import Path

from bolt.cache import cache_dir, enable_compilation_cache


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BOLT_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.setenv("BOLT_CACHE_DIR", "")
    assert cache_dir() is None
    monkeypatch.delenv("BOLT_CACHE_DIR")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "j"))
    assert cache_dir() == tmp_path / "j"
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "bolt" / "jax"


def test_an_unusable_directory_means_no_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert enable_compilation_cache(blocker / "sub") is None


def test_the_cli_fills_the_cache_and_a_second_process_reads_it(tmp_path):
    """`bolt problem` compiles a few programs; the cache directory holds them afterwards, and a
    second process that finds them compiles nothing new (the entry count does not grow)."""
    cache = tmp_path / "cache"
    env = dict(os.environ, BOLT_CACHE_DIR=str(cache), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-c", "import sys; from bolt.cli import main; sys.exit(main())", "problem", "--json"]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    first = sorted(p.name for p in Path(cache).rglob("*") if p.is_file())
    assert first, "the cache is empty after a bolt command"
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    second = sorted(p.name for p in Path(cache).rglob("*") if p.is_file())
    assert [n for n in second if not n.endswith("-atime")] == [n for n in first if not n.endswith("-atime")]
    env["BOLT_CACHE_DIR"] = ""
    off = tmp_path / "off"
    subprocess.run(cmd, env=dict(env, XDG_CACHE_HOME=str(off)), check=True, capture_output=True)
    assert not off.exists()
