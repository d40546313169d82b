"""What ``global.environment: production`` refuses (and what development warns about, once).

``unsafe_settings`` looks at the validated plugin configs and returns one ``ConfigError`` per unsafe setting,
located at the key in the file. It never puts a value in a message: hosts and schemes only.

* RabbitMQ or Celery broker credentials that are the defaults ``guest``/``guest`` (an ``amqp://`` URL without
  credentials means guest/guest too), or an empty password (RabbitMQ, the Celery broker URL, a Redis URL that
  gives ``user:`` or ``:`` with nothing after it, and a Redis URL to a non-loopback host without a password);
* no API key (``global.api_key``, else ``$EXPERIMENTHUB_API_KEY``);
* the embedded SQLite MLOps store or the local queue datastream, unless ``global.allow_embedded: true``;
* a plain-text MLflow (``http://``), broker (``amqp://``, RabbitMQ without ``ssl``) or Redis (``redis://``) URL to a
  host that is not loopback, unless ``global.allow_insecure_transport: true``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from framework.config import API_KEY_ENV, HubConfig
from framework.errors import ConfigError
from framework.plugins.settings import CeleryConfig, LocalStreamConfig, MLflowConfig, RabbitMQConfig

__all__ = ["unsafe_settings"]

_EMBEDDED_HINT = "set global.allow_embedded: true to accept it"
_TRANSPORT_HINT = "use TLS, or set global.allow_insecure_transport: true"
_AMQP = ("amqp", "pyamqp")
_REDIS = ("redis",)


def is_local(host: str | None) -> bool:
    """Loopback (``localhost``, ``127.0.0.0/8``, ``::1``) or no host at all (a Unix socket)."""
    if not host or host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unsafe_settings(config: HubConfig, settings: Mapping[str, Any]) -> list[ConfigError]:
    """Every setting production refuses, each located at its key (``plugins.<type>.config.<key>``)."""
    problems: list[ConfigError] = []
    g = config.global_
    if not (g.api_key or os.environ.get(API_KEY_ENV)):
        problems.append(
            config.error(
                f"no API key: the REST API would serve anyone (set it or ${API_KEY_ENV})", ("global", "api_key")
            )
        )
    for plugin_type, cfg in settings.items():
        at = ("plugins", plugin_type, "config")
        if isinstance(cfg, MLflowConfig):
            uri = urlsplit(cfg.mlflow_uri or "sqlite:///")
            if uri.scheme == "sqlite" and not g.allow_embedded:
                problems.append(config.error(f"the embedded SQLite MLOps store; {_EMBEDDED_HINT}", (*at, "mlflow_uri")))
            elif uri.scheme == "http" and not is_local(uri.hostname) and not g.allow_insecure_transport:
                problems.append(
                    config.error(f"plain-text http to {uri.hostname}; {_TRANSPORT_HINT}", (*at, "mlflow_uri"))
                )
        elif isinstance(cfg, LocalStreamConfig) and not g.allow_embedded:
            problems.append(
                config.error(f"the local queue datastream; {_EMBEDDED_HINT}", ("plugins", plugin_type, "type"))
            )
        elif isinstance(cfg, RabbitMQConfig):
            problems += _credentials(config, cfg.username, cfg.password, (*at, "password"), broker=True)
            if not is_local(cfg.host) and not getattr(cfg, "ssl", None) and not g.allow_insecure_transport:
                problems.append(config.error(f"plain-text AMQP to {cfg.host}; {_TRANSPORT_HINT}", (*at, "host")))
        elif isinstance(cfg, CeleryConfig):
            for key in ("broker_url", "backend_url"):
                problems += _url_problems(config, getattr(cfg, key), (*at, key))
    return problems


def _credentials(
    config: HubConfig, username: str | None, password: str | None, loc: tuple, *, broker: bool
) -> list[ConfigError]:
    if broker and (username or "guest") == "guest" and (password if password is not None else "guest") == "guest":
        return [config.error("the broker's default credentials guest/guest", loc)]
    if not password:
        return [config.error("empty password", loc)]
    return []


def _url_problems(config: HubConfig, url: str, loc: tuple) -> list[ConfigError]:
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in (*_AMQP, "amqps", *_REDIS, "rediss"):
        return []
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme in (*_REDIS, "rediss") and password is None and is_local(host):
        problems = []  # a loopback Redis without auth (protected mode); remote ones need a password
    else:
        problems = _credentials(config, username, password, loc, broker=scheme.startswith(("amqp", "pyamqp")))
    insecure = scheme in _AMQP or scheme in _REDIS
    if insecure and not is_local(host) and not config.global_.allow_insecure_transport:
        problems.append(config.error(f"plain-text {scheme} to {host}; {_TRANSPORT_HINT}", loc))
    return problems
