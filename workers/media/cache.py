"""A size-bounded cache of prepared media (chunks, frames) on disk, least recently used out.

Entries are files under one folder; what is in the cache is read from disk at start, so a
restart keeps it. Concurrent requests for the same missing entry make it once: the others
wait for the first. Hits and misses are counted for the benchmark and for logs.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path


class MediaCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, int] = OrderedDict()  # file name -> size, oldest first
        self._total = 0
        self._lock = threading.Lock()
        self._making: dict[str, threading.Lock] = {}
        root.mkdir(parents=True, exist_ok=True)
        for path in sorted(root.glob("*.bin"), key=lambda p: p.stat().st_mtime):
            self._remember(path.name, path.stat().st_size)

    def get_or_make(self, key: str, make: Callable[[], bytes]) -> bytes:
        """The bytes stored under ``key``, made by ``make()`` and kept if missing."""
        name = _file_name(key)
        found = self._read(name)
        if found is not None:
            return found
        with self._lock:
            making = self._making.setdefault(name, threading.Lock())
        with making:
            found = self._read(name)
            if found is not None:
                return found
            with self._lock:
                self.misses += 1
            data = make()
            self._store(name, data)
        with self._lock:
            self._making.pop(name, None)
        return data

    def get(self, key: str) -> bytes | None:
        return self._read(_file_name(key))

    def drop_prefix(self, prefix: str) -> None:
        """Removes every entry whose key starts with ``prefix`` (a task's data going away)."""
        tag = _prefix_tag(prefix)
        with self._lock:
            doomed = [name for name in self._entries if name.startswith(tag)]
            for name in doomed:
                self._total -= self._entries.pop(name)
        for name in doomed:
            (self.root / name).unlink(missing_ok=True)

    @property
    def total_bytes(self) -> int:
        return self._total

    def _read(self, name: str) -> bytes | None:
        with self._lock:
            if name not in self._entries:
                return None
            self._entries.move_to_end(name)
            self.hits += 1
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:  # evicted between the look-up and the read
            with self._lock:
                self.hits -= 1
            return None

    def _store(self, name: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return  # larger than the whole cache: serve it, keep nothing
        tmp = self.root / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.root / name)
        with self._lock:
            self._remember(name, len(data))
            doomed = self._evict()
        for old in doomed:
            (self.root / old).unlink(missing_ok=True)

    def _remember(self, name: str, size: int) -> None:
        self._total += size - self._entries.pop(name, 0)
        self._entries[name] = size

    def _evict(self) -> list[str]:
        doomed = []
        while self._total > self.max_bytes and self._entries:
            name, size = self._entries.popitem(last=False)
            self._total -= size
            doomed.append(name)
        return doomed


def _prefix_tag(prefix: str) -> str:
    return hashlib.sha1(prefix.encode()).hexdigest()[:12]


def _file_name(key: str) -> str:
    """``<hash of the part before the first '/'>-<hash of the key>.bin``, so that all
    entries of one task's data share a file-name prefix."""
    owner = key.split("/", 1)[0]
    return f"{_prefix_tag(owner)}-{hashlib.sha1(key.encode()).hexdigest()}.bin"
