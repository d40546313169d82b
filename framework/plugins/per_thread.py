"""``PerThread``: one resource per calling thread (a connection, a session), all of them closable together.

>>> connections = PerThread(sqlite3.Connection.close)
>>> db = connections.get(lambda: sqlite3.connect(path))   # this thread's one, opened on first use
>>> connections.discard_current()                         # close this thread's one
>>> connections.close_all()                               # close every thread's one (at shutdown)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerThread"]

T = TypeVar("T")


class PerThread(Generic[T]):
    """The calling thread's ``T`` (opened on first use by ``get``) plus a lock-protected list of every thread's.

    ``close`` is called on a resource when it is discarded; it runs outside the lock.
    """

    def __init__(self, close: Callable[[T], None]) -> None:
        self._close = close
        self._lock = threading.Lock()
        self._local = threading.local()
        self._all: list[T] = []

    def current(self) -> T | None:
        """The calling thread's resource, or None if it has none open."""
        return getattr(self._local, "value", None)

    def get(self, open_fn: Callable[[], T]) -> T:
        """The calling thread's resource; if it has none, ``open_fn()`` opens it (its exceptions propagate)."""
        value = self.current()
        if value is None:
            value = open_fn()
            with self._lock:
                self._local.value = value
                self._all.append(value)
        return value

    def snapshot(self) -> list[T]:
        """Every thread's open resource, as a new list."""
        with self._lock:
            return list(self._all)

    def discard_current(self) -> None:
        """Forget and close the calling thread's resource; nothing happens if it has none."""
        value = self.current()
        if value is None:
            return
        with self._lock:
            if value in self._all:
                self._all.remove(value)
        self._local.value = None
        self._close(value)

    def close_all(self) -> None:
        """Forget every thread's resource, then close them all."""
        with self._lock:
            values, self._all = self._all, []
            self._local = threading.local()
        for value in values:
            self._close(value)
