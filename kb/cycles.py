"""Pausing Python's cycle collector while a question builds a large answer.

A question over thousands of graphs makes hundreds of thousands of tuples, lists and dicts that
stay alive until the answer is returned. Each time enough of them have survived, the collector
walks every object of the process looking for reference cycles; at 10,000 graphs a two-hop
question triggered about ten such walks, a quarter of its time. The answers hold no cycles
(reference counting frees them), so the walks find nothing: they are skipped while a question
runs and resume when the last running question ends.
"""

from __future__ import annotations

import gc
import threading
from contextlib import ContextDecorator
from typing import Any

_lock = threading.Lock()
_running = 0  # questions inside a pause, in every thread
_resume = False  # whether the collector was on when the first of them began


class paused_cycle_collection(ContextDecorator):
    """A context manager (or decorator) under which the cycle collector does not run.

    Nested and concurrent pauses are counted: the collector is turned back on, if it was on
    before the first, when the last one ends. Reference counting goes on freeing objects.
    """

    def __enter__(self) -> "paused_cycle_collection":
        global _running, _resume
        with _lock:
            if _running == 0:
                _resume = gc.isenabled()
                gc.disable()
            _running += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        global _running
        with _lock:
            _running -= 1
            if _running == 0 and _resume:
                gc.enable()
