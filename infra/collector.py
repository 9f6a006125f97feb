"""Pausing Python's cycle collector while bulk work makes or drops many objects.

A dataset codec, or the writer saving an import, builds hundreds of thousands of small
objects (shapes, lists, XML nodes, events) that hold no reference cycles; the collector,
running every few hundred allocations, would now and then walk all objects alive in the
process, every loaded job's annotations among them: a third of a codec's time, a quarter
of a second at a time in a server. Reference counting still frees everything while the
collector is paused; cycles made meanwhile are collected once it runs again.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

_lock = threading.Lock()
_pausing = 0
_was_enabled = False

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector off inside (nests, and across threads: the last one out turns it
    back on if it was on when the first one came in)."""
    global _pausing, _was_enabled
    with _lock:
        if _pausing == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausing += 1
    try:
        yield
    finally:
        with _lock:
            _pausing -= 1
            if _pausing == 0 and _was_enabled:
                gc.enable()


def in_bulk(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` run with the cycle collector paused."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with collector_paused():
            return function(*args, **kwargs)

    return run
