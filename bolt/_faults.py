"""A fault-injection hook for tests: ``BOLT_FAULT=POINT:SIGNAL`` sends SIGNAL to this process at POINT.

Points of ``bolt run``: ``started`` (``config.toml`` written, no checkpoint yet), ``checkpoint:K``
(just after the checkpoint of iteration/block K is written),
``final-block:J`` (Picard, before final block J is drawn), ``solved`` (after the last checkpoint,
before anything is written), ``results`` (after ``results.nc``, before ``summary.json``), ``summary``
(after ``summary.json``, before bounds and report), ``outputs`` (before the checkpoint is removed).
``bolt bridge`` / ``bolt dynamics``: ``bridge:nc`` / ``dynamics:nc`` (the ``.nc`` written, the ``.json`` not).
``bolt sweep``: ``sweep:checked`` (``--out`` checked, the lock not yet taken).
SIGNAL is a name without ``SIG``: ``INT``, ``TERM``, ``KILL``, ``STOP`` (a test then continues the process).
Unset, the hook does nothing.
"""

from __future__ import annotations

import os
import signal

__all__ = ["fault_point"]


def fault_point(name: str) -> None:
    spec = os.environ.get("BOLT_FAULT")
    if not spec:
        return
    point, _, sig = spec.rpartition(":")
    if point == name:
        os.kill(os.getpid(), getattr(signal, f"SIG{sig}"))
