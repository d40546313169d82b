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

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ConfigError",
    "ConflictError",
    "DataValidationError",
    "ExperimentNotFound",
    "HubError",
    "JobFailed",
    "PluginError",
    "PluginUnavailable",
    "RedactFilter",
    "is_secret_key",
    "redact",
    "redact_details",
]

MASK = "***"
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pw",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
        "authorization",
        "passphrase",
        "cookie",
    }
)
_SECRET_SUFFIXES = ("password", "passwd", "secret", "token")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_PORT_ONLY = re.compile(r"^[^:]*(:\d*)?$")  # "host" or "host:5672": no password in it
# a key (bare or quoted) and its separator: password=..., "password": ..., Authorization: ...
_KEY = re.compile(r"""(?<![\w.])(?P<quote>["']?)(?P<key>[A-Za-z][\w.-]*)(?P=quote)(?P<sep>\s*[:=]\s*)""")
_AUTH_SCHEME = re.compile(r"(?i)(bearer|basic|token|digest)\s+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)([\w.~+/=-]+)")
_UNQUOTED_END = re.compile(r"[\s&;,'\"}\])]")


def is_secret_key(key: str) -> bool:
    """True for names whose values must be masked: ``password``, ``broker_password``, ``sslpassword``, ``pw``,
    ``api-key``, ``apiKey``, ``client_secret``, ``access_token``, ``Authorization``, ...

    >>> is_secret_key("MLFLOW_TRACKING_PASSWORD"), is_secret_key("n_components")
    (True, False)
    """
    words = [w for w in re.split(r"[^a-z0-9]+", str(key).lower()) if w]
    joined = "".join(words)
    return (
        any(w in _SECRET_WORDS or w.endswith(_SECRET_SUFFIXES) for w in words)
        or "apikey" in joined
        or "privatekey" in joined
    )


def redact(text: str) -> str:
    """Hide credentials in ``text`` by parsing it, not by one pattern.

    * URLs: the userinfo, up to the *last* ``@`` of the authority (as the connection libraries split it);
    * ``key=value``, ``key: value``, ``"key": "value"`` where the key is secret-like (``is_secret_key``): the value,
      quoted (with spaces and escaped quotes) or bare (up to whitespace, ``&``, ``;``, ``,``);
    * ``Authorization: Bearer <token>`` and any ``Bearer <token>``.

    >>> redact("amqp://guest:s3c@ret@host:5672//?password='a b'")
    "amqp://***@host:5672//?password='***'"
    """
    text = _URL.sub(_mask_url, str(text))
    text = _mask_pairs(text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)


def _mask_url(match: re.Match[str]) -> str:
    url = match.group(0)
    scheme, _, rest = url.partition("://")
    try:
        netloc = urlsplit(url).netloc
    except ValueError:  # e.g. an unbalanced "[" in the host
        netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        return f"{scheme}://{MASK}@{netloc.rpartition('@')[2]}{rest[len(netloc) :]}"
    if "@" in rest and not _PORT_ONLY.match(netloc):  # "user:pa/ss@host": the password holds a "/", "?" or "#"
        return f"{scheme}://{MASK}@{rest.rpartition('@')[2]}"
    return url


def _mask_pairs(text: str) -> str:
    out: list[str] = []
    pos = 0
    for match in _KEY.finditer(text):
        if match.start() < pos or not is_secret_key(match.group("key")):
            continue
        start = match.end()
        if scheme := _AUTH_SCHEME.match(text, start):  # Authorization: Bearer <token>
            start = scheme.end()
        end = _value_end(text, start)
        if end > start:
            value = text[start:end]
            quoted = value[0] in "'\"" and len(value) > 1
            out.append(text[pos:start] + (value[0] + MASK + value[-1] if quoted else MASK))
            pos = end
    out.append(text[pos:])
    return "".join(out)


def _value_end(text: str, start: int) -> int:
    """End of the value at ``start``: a quoted string (backslash or doubled quote escapes) or a bare word."""
    if start < len(text) and text[start] in "'\"":
        quote, i = text[start], start + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == quote:
                if text[i + 1 : i + 2] == quote:  # '' inside '...'
                    i += 2
                    continue
                return i + 1
            i += 1
        return len(text)  # unterminated: mask to the end
    found = _UNQUOTED_END.search(text, start)
    return found.start() if found else len(text)


def redact_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``details`` (health output) with secret-keyed values masked and every string redacted."""

    def clean(key: str, value: Any) -> Any:
        if is_secret_key(key):
            return MASK
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, Mapping):
            return {k: clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean("", v) for v in value]
        return value

    return {key: clean(str(key), value) for key, value in details.items()}


class RedactFilter(logging.Filter):
    """A logging filter that masks secrets in each record's message and traceback (a backstop on log handlers;
    ``configure_logging`` installs it). It rewrites the record and never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message and not self._mask_args(record):
            record.msg, record.args = masked, None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True

    @staticmethod
    def _mask_args(record: logging.LogRecord) -> bool:
        """Mask the string arguments one by one, keeping the tuple that formatters such as uvicorn's access log
        unpack; False when that does not hide everything."""
        if not isinstance(record.args, tuple):
            return False
        args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        try:
            message = str(record.msg) % args
        except (TypeError, ValueError):
            return False
        if redact(message) != message:
            return False
        record.args = args
        return True


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

    @classmethod
    def combine(cls, problems: list[ConfigError]) -> ConfigError:
        """One error for several: it reads as the first and lists them all, one per line, in ``problems``."""
        first = problems[0]
        error = cls(first.reason, source=first.source, line=first.line, field=first.field)
        if len(problems) > 1:
            error.args = ("\n".join(str(p) for p in problems),)
        error.problems = list(problems)
        return error


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
