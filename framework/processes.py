"""Whether a process of this machine still runs (stale leases, abandoned runs)."""

from __future__ import annotations

import os

__all__ = ["process_alive"]


def process_alive(pid: int | None) -> bool:
    """True if process ``pid`` runs on this machine; an unknown pid (None) and this process count as alive."""
    if pid is None or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
