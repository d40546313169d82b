"""The live dashboard at ``/ui``: server-rendered pages (Jinja2), a little plain JavaScript, plotly.js served from the
installed ``plotly`` package, and short polling of small JSON endpoints. Nothing loads from another host.

Pages: ``/ui`` (every experiment with its champion, last training and live scorer status, plugin health),
``/ui/experiments/{name}`` (live chart, open alarm episode, versions with a promote button, stored figures, drift
and events once they exist), ``/ui/jobs`` (recent trainings and retrains).

Auth: with an API key configured, ``/ui/login`` takes the key once and sets an HttpOnly, SameSite=Strict session
cookie signed with a per-process secret (``SessionSigner``). The auth middleware accepts that cookie wherever it
accepts the Bearer key; a state-changing request carried by the cookie must also send the page's CSRF token in
``X-CSRF-Token``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from framework.api.models import NAME_PATTERN

if TYPE_CHECKING:
    from framework.ExperimentHub import ExperimentHub

__all__ = ["CSRF_HEADER", "PREFIX", "SESSION_COOKIE", "LiveFeed", "LiveFeeds", "SessionSigner", "dashboard_router"]

PREFIX = "/ui"
SESSION_COOKIE = "ehub_session"
CSRF_HEADER = "x-csrf-token"
MAX_POINTS = 2000  # points a live feed keeps (the page keeps the same bound)
STALE_AFTER_S = 30.0  # a scorer whose last monitoring interval is older is shown as stopped
HERE = Path(__file__).parent
STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}

Name = Annotated[str, PathParam(pattern=NAME_PATTERN, description="experiment name")]


class SessionSigner:
    """Signs session cookies and derives their CSRF tokens; the secret lives only in this process."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key.encode()
        self._secret = secrets.token_bytes(32)

    def key_matches(self, key: str) -> bool:
        return hmac.compare_digest(key.encode(), self._api_key)

    def new_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign('session:' + nonce)}"

    def valid(self, session: str | None) -> bool:
        nonce, _, signature = (session or "").partition(".")
        return bool(nonce) and hmac.compare_digest(signature, self._sign("session:" + nonce))

    def csrf_token(self, session: str | None) -> str:
        return self._sign("csrf:" + (session or "").partition(".")[0]) if self.valid(session) else ""

    def csrf_ok(self, session: str | None, token: str | None) -> bool:
        expected = self.csrf_token(session)
        return bool(expected) and hmac.compare_digest(expected, token or "")

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()


class LiveFeed:
    """The recent predictions of one experiment as chart points, with a sequence number per point, and the open
    alarm episode (its start, length and the sensors that contribute most over it). Bounded: ``MAX_POINTS``."""

    def __init__(self, kind: str, max_points: int = MAX_POINTS) -> None:
        self.kind = kind
        self._points: deque[tuple[int, dict[str, Any]]] = deque(maxlen=max_points)
        self._seq = 0
        self._episode: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def add(self, records: Iterable[Mapping[str, Any]], received: float | None = None) -> None:
        """Add prediction records (as the scorer publishes them)."""
        now_ms = int(1000 * (received if received is not None else time.time()))
        with self._lock:
            for record in records:
                point = self._point(record, now_ms)
                self._seq += 1
                self._points.append((self._seq, point))
                self._track_episode(record, point)

    def since(self, after: int) -> dict[str, Any]:
        """Points newer than ``after``; ``reset`` tells the page its window is gone (the feed restarted)."""
        with self._lock:
            oldest = self._points[0][0] if self._points else self._seq + 1
            points = [p for seq, p in self._points if seq > after]
            episode = None if self._episode is None else {**self._episode, "top": self._top()}
            reset = after > self._seq or after < oldest - 1
            return {"seq": self._seq, "points": points, "episode": episode, "reset": reset}

    def _point(self, record: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        t = record.get("timestamp") or now_ms
        if self.kind == "time_series":
            keys = ("actual", "forecast", "lower", "upper")
            return {"t": t, **{k: _number(record.get(k)) for k in keys}, "anomaly": bool(record.get("is_anomaly"))}
        return {
            "t": t,
            "score": _number(record.get("score")),
            "threshold": _number(record.get("threshold")),
            "alarm": bool(record.get("is_anomaly")),
        }

    def _track_episode(self, record: Mapping[str, Any], point: dict[str, Any]) -> None:
        if not (point.get("alarm") or point.get("anomaly")):
            self._episode = None
            return
        if self._episode is None:
            self._episode = {"start": point["t"], "rows": 0, "shares": {}}
        self._episode["rows"] += 1
        shares = self._episode["shares"]
        for feature, share in _shares(record.get("top_features")):
            shares[feature] = shares.get(feature, 0.0) + share

    def _top(self, n: int = 5) -> list[tuple[str, float]]:
        assert self._episode is not None
        shares, rows = self._episode["shares"], max(self._episode["rows"], 1)
        ranked = sorted(shares.items(), key=lambda item: item[1], reverse=True)[:n]
        return [(feature, total / rows) for feature, total in ranked]


def _utc_iso(frame: Any) -> Any:
    """Datetime columns as ISO-8601 strings with their zone (UTC when naive), for JSON and the browser."""
    import pandas as pd

    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            utc = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
            frame = frame.assign(**{column: utc.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    return frame


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _shares(text: Any) -> list[tuple[str, float]]:
    """``"s07:0.55,s08:0.15"`` -> ``[("s07", 0.55), ("s08", 0.15)]`` (malformed parts are skipped)."""
    pairs = []
    for part in str(text or "").split(","):
        feature, _, share = part.rpartition(":")
        if feature and (value := _number(share)) is not None:
            pairs.append((feature, value))
    return pairs


class LiveFeeds:
    """One ``LiveFeed`` per experiment, each fed by a background watcher of the prediction tap (never the
    downstream consumer's queue), started when a page first asks for it and stopped with the app."""

    def __init__(self, hub: ExperimentHub) -> None:
        self._hub = hub
        self._feeds: dict[str, LiveFeed] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def get(self, name: str, kind: str) -> LiveFeed:
        with self._lock:
            feed = self._feeds.get(name)
            if feed is None:
                feed = self._feeds[name] = LiveFeed(kind)
                threading.Thread(target=self._watch, args=(name, feed), name=f"ui-tap-{name}", daemon=True).start()
            return feed

    def _watch(self, name: str, feed: LiveFeed) -> None:
        while not self._stop.is_set():
            try:
                for frame in self._hub.watch_predictions(name, self._stop):
                    feed.add(_utc_iso(frame).to_dict("records"))
            except Exception:  # the tap went away (broker restart): wait, then watch again
                self._stop.wait(2.0)

    def close(self) -> None:
        self._stop.set()


def _templates() -> Any:
    from fastapi.templating import Jinja2Templates

    return Jinja2Templates(directory=str(HERE / "templates"))


def dashboard_router(signer: SessionSigner | None) -> APIRouter:
    """The ``/ui`` pages, their JSON endpoints and static files. ``signer`` is None when no API key is set."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    templates = _templates()

    def page(request: Request, template: str, **context: Any) -> HTMLResponse:
        session = request.cookies.get(SESSION_COOKIE)
        csrf = signer.csrf_token(session) if signer is not None else ""
        return templates.TemplateResponse(
            request, template, {"prefix": PREFIX, "csrf_token": csrf, "auth": signer is not None, **context}
        )

    @router.get("")
    def overview(request: Request) -> HTMLResponse:
        return page(request, "overview.html", nav="overview")

    @router.get("/experiments/{name}")
    def experiment(request: Request, name: Name) -> HTMLResponse:
        return page(request, "experiment.html", nav="experiment", name=name)

    @router.get("/jobs")
    def jobs(request: Request) -> HTMLResponse:
        return page(request, "jobs.html", nav="jobs")

    @router.get("/login")
    def login_form(request: Request) -> Response:
        if signer is None:
            return RedirectResponse(PREFIX, status_code=303)
        return page(request, "login.html")

    @router.post("/login")
    def login(request: Request, key: Annotated[str, Form(max_length=1024)] = "") -> Response:
        if signer is None:
            return RedirectResponse(PREFIX, status_code=303)
        if not signer.key_matches(key):
            response = page(request, "login.html", error="That is not the hub's API key.")
            response.status_code = 401
            return response
        response = RedirectResponse(PREFIX, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            signer.new_session(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @router.get("/logout")
    def logout() -> Response:
        response = RedirectResponse(f"{PREFIX}/login" if signer is not None else PREFIX, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/static/plotly.min.js")
    def plotly_js() -> FileResponse:
        import plotly

        bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        return FileResponse(bundle, media_type="text/javascript")

    @router.get("/static/{filename}")
    def static(filename: str) -> Response:
        if filename not in STATIC_FILES:
            return JSONResponse({"error": {"code": 404, "message": "no such file", "field": None}}, status_code=404)
        return FileResponse(HERE / "static" / filename, media_type=STATIC_FILES[filename])

    @router.get("/api/overview")
    def overview_data(request: Request) -> JSONResponse:
        hub: ExperimentHub = request.app.state.hub
        health = {}
        for ptype, entry in hub.check_plugin_health().items():
            details = entry["details"]
            health[ptype] = {"healthy": entry["healthy"], "reason": details.get("reason", details.get("error"))}
        infos = hub.experiments()
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="ui-overview") as pool:  # store reads per row
            rows = list(pool.map(lambda info: _overview_row(hub, info), infos))
        return JSONResponse(_plain({"health": health, "experiments": rows}))

    @router.get("/api/experiments/{name}")
    def experiment_data(request: Request, name: Name) -> JSONResponse:
        hub: ExperimentHub = request.app.state.hub
        info = hub.get_experiment(name)
        versions = hub.version_details(name, limit=20)
        served = next((v for v in versions if v["champion"]), None)
        return JSONResponse(
            _plain(
                {
                    "name": name,
                    "type": info.type,
                    "champion": info.champion,
                    "versions": versions,
                    "figures": served["figures"] if served else [],
                    "events": _events(hub, name),
                }
            )
        )

    @router.get("/api/experiments/{name}/live")
    def live_data(
        request: Request, name: Name, after: Annotated[int, Query(ge=0, le=2**62)] = 0
    ) -> JSONResponse:
        hub: ExperimentHub = request.app.state.hub
        info = hub.get_experiment(name)
        feed = request.app.state.live_feeds.get(name, info.type)
        body = feed.since(after)
        body.update(kind=info.type, target=info.spec.get("target"), monitoring=_live_status(hub, name))
        return JSONResponse(_plain(body))

    @router.get("/api/jobs")
    def jobs_data(request: Request) -> JSONResponse:
        hub: ExperimentHub = request.app.state.hub
        return JSONResponse(_plain(hub.training_history(limit=100)))

    return router


def _overview_row(hub: ExperimentHub, info: Any) -> dict[str, Any]:
    """One experiment of the overview: type, champion, its newest training and its scorer's live status."""
    last = hub.training_history(info.name, limit=1)
    return {
        "name": info.name,
        "type": info.type,
        "champion": info.champion,
        "last_training": last[0] if last else None,
        "live": _live_status(hub, info.name),
    }


def _live_status(hub: ExperimentHub, name: str) -> dict[str, Any] | None:
    """The newest monitoring interval of the experiment's scorers, marked stopped when it is stale."""
    latest = hub.monitoring_status(name)
    if latest is None:
        return None
    updated = latest.get("updated")
    fresh = updated is not None and time.time() * 1000 - updated < STALE_AFTER_S * 1000
    running = fresh and not latest.get("ended")
    return {**latest, "running": running}


def _events(hub: ExperimentHub, name: str) -> list[dict[str, Any]]:
    """Drift and alert events, once the hub records them (older hubs have none)."""
    events = getattr(hub, "recent_events", None)
    return list(events(name, limit=50)) if callable(events) else []


def _plain(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, tuples become lists."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
