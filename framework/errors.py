"""Errors ExperimentHub raises on purpose; ``except HubError`` catches them all.

::

    HubError
      ConfigError          (also ValueError)   hub_config.yaml or a spec is wrong: names file, line, field
      PluginError                              unknown type, wrong shape, initialize() failed
        PluginUnavailable                      the service behind a plugin is down; safe to retry
      ExperimentNotFound   (also LookupError)  no experiment, version, alias or job of that name
      ConflictError                            the name is taken, or the state forbids the call
      DataValidationError  (also ValueError)   a column or record breaks the spec: names which and why
      JobFailed                                a training job ended in failure; carries the job id

Usage::

    try:
        hub = ExperimentHub.from_config("hub_config.yaml")
    except HubError as exc:
        log.error("%s", exc)

A wrong argument type stays a plain ``TypeError``: usage mistakes are not hub errors.
"""

from __future__ import annotations

import re

__all__ = [
    "ConfigError",
    "ConflictError",
    "DataValidationError",
    "ExperimentNotFound",
    "HubError",
    "JobFailed",
    "PluginError",
    "PluginUnavailable",
    "is_secret_key",
    "redact",
]

_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_SECRET_WORDS = r"password|passwd|pwd|token|secret|api[_-]?key|credentials?"
_SECRET_PAIRS = re.compile(rf"(?i)\b({_SECRET_WORDS})(['\"]?\s*[:=]\s*['\"]?)[^\s'\",;&}}]+")
_SECRET_KEY = re.compile(rf"(?i)(^|[_.-])({_SECRET_WORDS})($|[_.-])")


def is_secret_key(key: str) -> bool:
    """True for names such as ``password``, ``broker_password`` or ``api-key`` whose values must be masked."""
    return _SECRET_KEY.search(str(key)) is not None


def redact(text: str) -> str:
    """Hide credentials in ``text``: ``user:pw@`` in URLs and ``password=...``-style pairs.

    >>> redact("amqp://guest:s3cret@host:5672//")
    'amqp://***@host:5672//'
    """
    text = _URL_CREDENTIALS.sub("***@", str(text))
    return _SECRET_PAIRS.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class ConfigError(HubError, ValueError):
    """The config file or an experiment spec is wrong; names the file, line and dotted field."""

    def __init__(
        self, reason: str, *, source: str | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        where = ":".join(str(p) for p in (source, line) if p is not None)
        super().__init__(": ".join(p for p in (where, field, reason) if p))
        self.reason, self.source, self.line, self.field = reason, source, line, field
        self.problems: list[ConfigError] = [self]  # every problem found, when several were


class PluginError(HubError):
    """A plugin could not be resolved, constructed or initialized."""

    def __init__(self, reason: str, *, plugin_type: str | None = None) -> None:
        super().__init__(redact(reason))
        self.plugin_type = plugin_type


class PluginUnavailable(PluginError):
    """The service behind a plugin is down or timed out; the call is safe to retry."""


class ExperimentNotFound(HubError, LookupError):
    """No experiment (or version, alias, figure, job) by that name."""

    def __str__(self) -> str:  # LookupError would add quotes around the message
        return str(self.args[0]) if self.args else ""


class ConflictError(HubError):
    """The name is already taken, or the current state forbids the operation."""


class DataValidationError(HubError, ValueError):
    """Data breaks the spec; ``field`` names the column (or record field) at fault."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason, self.field = reason, field


class JobFailed(HubError):
    """A job ended in failure; ``job_id`` says which, the message says why."""

    def __init__(self, reason: str, *, job_id: str | None = None) -> None:
        super().__init__(redact(reason))
        self.job_id = job_id
