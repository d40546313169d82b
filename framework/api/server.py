"""Run the REST API under uvicorn: what ``experimenthub serve`` calls."""

from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["serve"]

log = logging.getLogger(__name__)


def serve(
    config: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "info"
) -> None:
    """Build the hub from ``config`` (so config and plugin errors surface before the server starts as a
    ``HubError``), serve the API on ``host:port`` until interrupted, then shut the hub down.

    One process: in-process training jobs live in it, so do not run several uvicorn workers without a taskqueue.
    """
    import uvicorn

    from framework.api.app import create_app
    from framework.api.protocol import with_header_timeout
    from framework.config import configure_logging, load_config
    from framework.errors import RedactFilter
    from framework.ExperimentHub import ExperimentHub

    hub_config = load_config(config)
    configure_logging(hub_config)
    for name in ("uvicorn.access", "uvicorn.error"):  # access lines carry query strings (?api_key=...)
        logging.getLogger(name).addFilter(RedactFilter())
    hub = ExperimentHub.from_hub_config(hub_config)
    try:
        app = create_app(hub)
        log.info("serving ExperimentHub on http://%s:%d (docs at /docs)", host, port)
        protocol = with_header_timeout(hub_config.global_.api.header_timeout)  # slowloris: a late head is dropped
        uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False, http=protocol)
    finally:
        hub.shutdown()
