"""Pausing Python's cycle collector while a codec makes or drops many objects.

A codec builds or reads hundreds of thousands of small objects (shapes, lists, XML nodes)
that hold no reference cycles; every few hundred allocations the collector would walk all
objects alive in the process, the whole task's annotations among them, which costs a third
of an import. Reference counting still frees everything while the collector is paused;
cycles made meanwhile are collected once it runs again.
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
