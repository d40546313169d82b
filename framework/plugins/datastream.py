"""``DataStreamPlugin``: records in, predictions out, over durable queues."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from framework.plugins.base import Plugin

__all__ = ["DEAD_LETTER_SUFFIX", "DataStreamPlugin", "Delivery", "OutgoingMessage"]

DEAD_LETTER_SUFFIX = ".dead-letter"  # create_queue("x") also creates "x" + DEAD_LETTER_SUFFIX


@dataclass
class OutgoingMessage:
    """A message to publish. ``body`` is bytes (already encoded) with its content type."""

    body: bytes
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Delivery:
    """A received message. ``tag`` is the transport's delivery tag; settle it through the plugin."""

    body: bytes
    tag: Any
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    redelivered: bool = False
    timestamp: float | None = None


BatchHandler = Callable[[list[Delivery]], None]


@runtime_checkable
class DataStreamPlugin(Plugin, Protocol):
    """Durable queues with confirmed publishes, manual acks and a dead-letter queue per queue.

    Queue names are plain strings such as ``"pump.input"``; ``create_queue`` also creates ``"pump.input.dead-letter"``
    unless told otherwise. Connections are not shared across threads.
    """

    plugin_type: str = "datastream"

    def connect(self) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        raise NotImplementedError

    def create_queue(self, name: str, dead_letter: bool = True) -> None:
        """Declare a durable queue (idempotent)."""
        raise NotImplementedError

    def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish persistently and return only once the broker confirmed every message."""
        raise NotImplementedError

    def pull_data(self, queue: str, max_messages: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Take up to ``max_messages`` without waiting longer than ``timeout``; settle them with ack/reject."""
        raise NotImplementedError

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge deliveries (batched where the transport allows)."""
        raise NotImplementedError

    def reject(self, deliveries: Sequence[Delivery], requeue: bool = True) -> None:
        raise NotImplementedError

    def consume(
        self,
        queue: str,
        handler: BatchHandler,
        batch_size: int = 100,
        batch_timeout_ms: int = 200,
        stop: threading.Event | None = None,
    ) -> None:
        """Call ``handler`` with micro-batches until ``stop`` is set. The handler settles (acks) what it handles."""
        raise NotImplementedError

    def flush_queue(self, queue: str) -> int:
        """Purge the queue; return how many messages were removed."""
        raise NotImplementedError

    def queue_depth(self, queue: str) -> int:
        raise NotImplementedError

    def queue_depths(self) -> Mapping[str, int]:
        """Depth of every queue this plugin declared."""
        raise NotImplementedError
