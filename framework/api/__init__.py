"""The ExperimentHub REST API (FastAPI): ``create_app(hub_or_config)`` and ``serve(config, host, port)``.

Needs the ``api`` extra: ``pip install 'experimenthub[api]'``.
"""

from __future__ import annotations

from framework.api.app import create_app
from framework.api.server import serve

__all__ = ["create_app", "serve"]
