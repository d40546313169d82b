"""The ``Plugin`` protocol every hub plugin satisfies (DESIGN.md §1, kept exactly)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Plugin"]


@runtime_checkable
class Plugin(Protocol):
    """A service adapter the hub owns: constructed with its config, registered, initialized, used, shut down.

    Subclasses need not call ``super().__init__()``; the hub only relies on the members below.

    >>> class Dummy(Plugin):
    ...     plugin_type = "mlops"
    ...     def __init__(self, **kwargs): self.config = kwargs
    ...     def initialize(self): ...
    ...     def shutdown(self): ...
    ...     def health_check(self): return True, {"status": "ok"}
    """

    plugin_type: str

    def __init__(self, **kwargs: Any) -> None: ...

    def initialize(self) -> None:
        """Connect to the service. Raise on failure; the hub wraps the error in ``PluginError``."""
        ...

    def shutdown(self) -> None:
        """Release every resource. Must be idempotent."""
        ...

    def health_check(self) -> tuple[bool, dict]:
        """Return ``(healthy, details)``. Details never hold secrets."""
        ...
