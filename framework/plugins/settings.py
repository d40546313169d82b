"""Config models of the built-in plugins: keys, types, defaults, which keys are secrets, one description each.

This module imports no service client, so ``experimenthub config check`` and ``experimenthub plugins --config-help``
validate and describe plugin configs without importing mlflow, kombu or celery. The registry maps each alias to its
class and to its model here (``registry.PLUGIN_ALIASES``). Each built-in constructor validates its arguments through
the same model (``validated_by``), so ``RabbitMQPlugin(port="abc")`` and ``port: abc`` in ``hub_config.yaml`` fail
with the same ``ConfigError``::

    >>> RabbitMQPlugin(port="abc")
    ConfigError: RabbitMQPlugin: port: Input should be a valid integer, unable to parse string as an integer

A third-party plugin may declare its own model as the class attribute ``config_model`` (a ``PluginSettings``
subclass); without one, its constructor's keys are checked by name only.
"""

from __future__ import annotations

import functools
import inspect
import ssl
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from framework.config import validation_error

__all__ = [
    "CeleryConfig",
    "LocalStreamConfig",
    "MLflowConfig",
    "PluginSettings",
    "RabbitMQConfig",
    "TLSConfig",
    "describe",
    "secret",
    "validated_by",
]

Init = TypeVar("Init", bound=Callable[..., None])


def secret(default: Any = ..., description: str = "") -> Any:
    """A field whose value is a secret: never shown in errors, logs, health details or ``--config-help`` defaults."""
    return Field(default, description=description, repr=False, json_schema_extra={"secret": True})


class PluginSettings(BaseModel):
    """Base of plugin config models: unknown keys are refused; a model describes itself for ``--config-help``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _readable_file(value: str | None) -> str | None:
    if value is not None and not Path(value).is_file():
        raise ValueError(f"no such file: {value}")
    return value


class TLSConfig(PluginSettings):
    """``ssl:`` of a broker connection (amqps). ``ssl: {}`` verifies the server against the system's CAs."""

    ca_file: str | None = Field(None, description="PEM file of the CA(s) that signed the server's certificate")
    cert_file: str | None = Field(None, description="PEM client certificate, for brokers that require one")
    key_file: str | None = Field(None, description="PEM private key of cert_file (default: inside cert_file)")
    verify: bool = Field(True, description="check the server's certificate and host name (keep true)")

    _files = pydantic.field_validator("ca_file", "cert_file", "key_file")(_readable_file)

    @pydantic.model_validator(mode="after")
    def _key_needs_cert(self) -> TLSConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self

    def amqp_options(self, host: str) -> dict[str, Any]:
        """The ``ssl`` options of py-amqp (kombu ``Connection(ssl=...)``, Celery ``broker_use_ssl``)."""
        options: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED if self.verify else ssl.CERT_NONE}
        if self.verify:
            options["server_hostname"] = host  # also turns on the host name check
        if self.ca_file:
            options["ca_certs"] = self.ca_file
        if self.cert_file:
            options["certfile"] = self.cert_file
            options["keyfile"] = self.key_file
        return options


class MLflowConfig(PluginSettings):
    """``mlops: mlflow``: an MLflow tracking server, or the embedded SQLite store."""

    mlflow_uri: str | None = Field(
        None,
        description="http(s)://[user:password@]host:port of a tracking server, or sqlite:///path/mlflow.db "
        "(default: sqlite:///<state dir>/mlflow.db)",
    )
    registry_uri: str | None = Field(None, description="model registry URI, if not the tracking store")
    artifact_location: str | None = Field(
        None, description="artifact root of experiments this plugin creates (SQLite default: <db dir>/artifacts)"
    )
    request_timeout: float = Field(10.0, gt=0, description="read timeout (s) of each MLflow HTTP request")
    max_retries: int = Field(2, ge=0, le=10, description="retries of a failed MLflow HTTP request")
    backoff_factor: float = Field(1.0, ge=0, description="backoff factor between those retries")
    health_timeout: float = Field(3.0, gt=0, description="deadline (s) of health checks; also the connect timeout")
    username: str | None = Field(None, description="user of a server run with --app-name basic-auth")
    password: str | None = secret(None, "password of that user (use ${ENV} or ${file:...})")
    ca_bundle: str | None = Field(None, description="PEM CA bundle that signed an https server's certificate")
    client_cert: str | None = Field(None, description="PEM client certificate with its key, for mutual TLS")

    _mlflow_files = pydantic.field_validator("ca_bundle", "client_cert")(_readable_file)

    @pydantic.model_validator(mode="after")
    def _credentials_in_pairs(self) -> MLflowConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both or neither")
        return self

    @pydantic.field_validator("mlflow_uri")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https", "sqlite"):
            raise ValueError("must start with http://, https:// or sqlite:///")
        return value


class RabbitMQConfig(PluginSettings):
    """``datastream: rabbitmq``: durable queues on a RabbitMQ broker."""

    host: str = Field("localhost", min_length=1, description="broker host name or address")
    port: int = Field(5672, ge=1, le=65535, description="AMQP port (5671 for amqps)")
    username: str = Field("guest", description="broker user")
    password: str = secret("guest", "broker password")
    virtual_host: str = Field("/", description="RabbitMQ virtual host")
    heartbeat: int = Field(30, ge=0, description="AMQP heartbeat in seconds (0 disables it)")
    prefetch: int = Field(1000, ge=1, le=65535, description="basic.qos prefetch count per channel")
    queue_type: Literal["classic", "quorum"] = Field("classic", description="type of the queues this plugin declares")
    connect_timeout: float = Field(5.0, gt=0, description="initialize() gives up after this many seconds")
    operation_timeout: float = Field(10.0, gt=0, description="socket timeout, and the wait for publisher confirms")
    max_retries: int = Field(5, ge=0, description="reconnection attempts after the connection is lost")
    retry_interval_start: float = Field(0.5, ge=0, description="first reconnection delay (s)")
    retry_interval_step: float = Field(1.0, ge=0, description="added to the delay after each attempt (s)")
    retry_interval_max: float = Field(5.0, ge=0, description="longest reconnection delay (s)")
    ssl: TLSConfig | None = Field(None, description="TLS (amqps): ca_file, cert_file, key_file, verify; port 5671")

    @pydantic.model_validator(mode="before")
    @classmethod
    def _tls_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("ssl") is not None and "port" not in data:
            return {**data, "port": 5671}  # the amqps port
        return data


class LocalStreamConfig(PluginSettings):
    """``datastream: local``: durable queues in one SQLite file, no server."""

    path: str = Field(min_length=1, description="the SQLite file (parent folders are created)")
    polling_interval: float = Field(0.05, gt=0, description="seconds between polls of an empty queue")
    visibility_timeout: float = Field(600.0, gt=0, description="an unsettled delivery is redelivered after this (s)")
    busy_timeout: float = Field(10.0, gt=0, description="wait for another process's write lock (s)")
    synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        "FULL", description="SQLite PRAGMA synchronous: FULL survives power loss, NORMAL a process crash"
    )

    @pydantic.field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        return str(value) if hasattr(value, "__fspath__") else value

    @pydantic.field_validator("synchronous", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class CeleryConfig(PluginSettings):
    """``taskqueue: celery``: training jobs on Celery workers (RabbitMQ broker, Redis results)."""

    broker_url: str = Field(description="amqp://user:password@host:5672/vhost")
    backend_url: str = Field(description="redis://[:password@]host:6379/0")
    app_name: str = Field(description="Celery app name")
    queue: str = Field("experimenthub", description="the queue the workers consume (one per deployment)")
    task_time_limit: float = Field(3600.0, gt=0, description="hard time limit per job (s)")
    task_soft_time_limit: float | None = Field(
        None, gt=0, description="soft limit (s), below task_time_limit (default: 95 % of it)"
    )
    result_expires: float = Field(7 * 24 * 3600.0, gt=0, description="how long job states stay in the backend (s)")
    connect_timeout: float = Field(4.0, gt=0, description="bound of each broker and backend connection attempt (s)")
    health_timeout: float = Field(1.0, gt=0, description="how long the health check waits for workers (s)")
    ssl: TLSConfig | None = Field(None, description="TLS to the broker (amqps://...:5671): ca_file, cert_file, ...")

    _checked = pydantic.field_validator("broker_url", "backend_url", "app_name", "queue")(_non_empty)

    @pydantic.field_validator("task_soft_time_limit")
    @classmethod
    def _soft_below_hard(cls, value: float | None, info: pydantic.ValidationInfo) -> float | None:
        hard = info.data.get("task_time_limit")
        if value is not None and hard is not None and not value < hard:
            raise ValueError("must be below task_time_limit")
        return value


def validated_by(model: type[PluginSettings]) -> Callable[[Init], Init]:
    """Decorate a plugin's ``__init__``: its arguments go through ``model`` first; the given ones, coerced, are
    passed on (``port="5672"`` arrives as ``5672``). Any problem is one ``ConfigError`` naming the class and field."""

    def decorate(init: Init) -> Init:
        names = [name for name in inspect.signature(init).parameters if name != "self"]

        @functools.wraps(init)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__}() takes at most {len(names)} positional arguments")
            values = dict(zip(names, args, strict=False))
            if twice := sorted(set(values) & set(kwargs)):
                raise TypeError(f"{type(self).__name__}() got multiple values for {', '.join(twice)}")
            values.update(kwargs)
            try:
                checked = model.model_validate(values)
            except pydantic.ValidationError as exc:
                raise validation_error(exc, source=type(self).__name__, keys=list(model.model_fields)) from None
            init(self, **{name: getattr(checked, name) for name in checked.model_fields_set})

        wrapper.config_model = model  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def describe(model: type[BaseModel]) -> list[dict[str, str]]:
    """One row per key: name, type, default (``***`` for secrets), required, secret, description."""
    rows = []
    for name, field in model.model_fields.items():
        is_secret = bool((field.json_schema_extra or {}).get("secret"))  # type: ignore[union-attr]
        required = field.is_required()
        default = "" if required else ("***" if is_secret else repr(field.get_default(call_default_factory=True)))
        annotation = field.annotation
        if typing.get_origin(annotation) is Literal:
            type_name = " | ".join(map(repr, typing.get_args(annotation)))
        else:
            type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        rows.append(
            {
                "key": name,
                "type": str(type_name),
                "default": default,
                "required": "yes" if required else "no",
                "secret": "yes" if is_secret else "no",
                "description": field.description or "",
            }
        )
    return rows
