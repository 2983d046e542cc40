"""Progress reporting: a tqdm bar on a terminal, silence otherwise or when asked."""

from __future__ import annotations

import contextlib
import sys

__all__ = ["progress", "count_compilations"]


def progress(total: int, desc: str, enabled: bool | None = None):
    """A tqdm bar when ``enabled`` (default: stderr is a terminal), else a no-op object."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    class _Null:
        def update(self, *_):
            pass

        def set_postfix(self, *_, **__):
            pass

        def close(self):
            pass

    return _Null()


_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_listeners: list = []


def _on_event(event, *_a, **_k):
    if event == _COMPILE_EVENT:
        for counter in _listeners:
            counter[0] += 1


_registered = False


@contextlib.contextmanager
def count_compilations():
    """Count XLA backend compilations inside the ``with`` block (yields a one-element list)."""
    global _registered
    import jax

    if not _registered:
        jax.monitoring.register_event_duration_secs_listener(_on_event)
        _registered = True
    counter = [0]
    _listeners.append(counter)
    try:
        yield counter
    finally:
        _listeners.remove(counter)
