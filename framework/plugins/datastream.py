"""``DataStreamPlugin``: records in, predictions out, over durable queues."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from framework.plugins.base import Plugin

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "DataStreamPlugin",
    "Delivery",
    "OutgoingMessage",
    "Watch",
    "dead_letter_queue",
    "input_queue",
    "prediction_queue",
]

DEAD_LETTER_SUFFIX = ".dead-letter"  # create_queue("x") also creates "x" + DEAD_LETTER_SUFFIX


# The one place an experiment's queue names are spelled.
def input_queue(experiment: str) -> str:
    """Where producers publish an experiment's records: ``<name>.input``."""
    return f"{experiment}.input"


def prediction_queue(experiment: str) -> str:
    """Where the scorer publishes an experiment's predictions: ``<name>.predictions``."""
    return f"{experiment}.predictions"


def dead_letter_queue(experiment: str) -> str:
    """Where bad input messages of an experiment go, with their reason: ``<name>.input.dead-letter``."""
    return input_queue(experiment) + DEAD_LETTER_SUFFIX


@dataclass
class OutgoingMessage:
    """A message to publish. ``body`` is bytes (already encoded) with its content type."""

    body: bytes
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Delivery:
    """A received message. ``tag`` is the transport's delivery tag; settle it through the plugin.

    ``delivery_count`` is how many times the message was delivered, this time included, when the transport counts
    (the local queue; RabbitMQ quorum queues), else None (RabbitMQ classic queues only say ``redelivered``).
    """

    body: bytes
    tag: Any
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    content_type: str | None = None
    redelivered: bool = False
    timestamp: float | None = None
    delivery_count: int | None = None


BatchHandler = Callable[[list[Delivery]], None]


class Watch(Protocol):
    """An observer's view of a topic: copies of the messages published after it opened (nothing is taken)."""

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Up to ``max_messages`` new messages, waiting at most ``timeout`` while none has come (no settling)."""
        ...

    def close(self) -> None: ...


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

    def delete_queue(self, name: str, dead_letter: bool = True) -> None:
        """Delete a queue (and its dead-letter queue) with whatever it holds; a missing queue is ignored."""
        raise NotImplementedError

    def publish(self, queue: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish persistently and return only once the broker confirmed every message.

        Mandatory: a message no queue takes raises ``PluginError`` (it is never dropped silently)."""
        raise NotImplementedError

    def create_topic(self, topic: str) -> None:
        """Declare ``topic``: what is published to it reaches the durable queue of the same name and every watcher.

        Default (a plugin without topics): the queue alone."""
        self.create_queue(topic)

    def publish_topic(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        """Publish to ``topic`` as ``publish`` does (persistent, confirmed, mandatory). Default: to its queue."""
        self.publish(topic, messages)

    def watch(self, topic: str) -> Watch:
        """Watch ``topic`` without taking messages from its queue (``experimenthub tail``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot watch topics")

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
