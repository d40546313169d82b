"""The FastAPI app: a thin front door that parses input, calls the hub, and renders the answer.

>>> app = create_app("hub_config.yaml")        # or create_app(hub), or create_app() for the embedded default
>>> # python -m uvicorn framework.api.app:create_app --factory    /    experimenthub serve --port 8000

Design:

- **Auth.** With ``global.api_key`` in the config (else ``$EXPERIMENTHUB_API_KEY``), every path except ``/health``
  and the API docs (``/docs``, ``/redoc``, ``/openapi.json``: shapes only, no data) needs ``Authorization: Bearer
  <key>``; the check is constant-time and runs before any body is read. ``/health`` without the key answers only
  each plugin's state (and the overall one, as 200 or 503); its details (hosts, paths, queue depths, versions)
  come with the key, or with ``?details=true`` when no key is set.
- **Limits** (``global.api``). Bodies over ``max_body_bytes`` (default 8 MiB) get 413, from ``Content-Length``
  before anything is read, or while streaming when it is absent. A request still running after ``request_timeout``
  seconds (default 60) gets 503. An uploaded file over ``max_cells`` rows x columns (default ``records.MAX_CELLS``)
  gets 422: Parquet is checked from its metadata and Excel row by row before they are read, so a small compressed
  file cannot expand into gigabytes. CORS is off unless ``cors_origins`` lists the allowed origins.
- **Threads and deadlines.** The hub is blocking (MLOps store, broker), so every hub call that may reach a service
  runs on the app's own hub pool with a total deadline (``hub_deadline_s``, default 10 s): past it the client gets
  503 at once, whatever the hung service does with the thread. ``/health`` runs on a pool of its own, and routes
  that do no I/O (``/experiment-types``) run on the event loop, so neither waits behind store calls. Training only
  queues a job (``hub.submit_training``) and answers 202.
- **Errors.** One body shape, mapped in ``framework.api.errors``; nothing unexpected leaks past a generic 500.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware import Middleware
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPBearer
from starlette.datastructures import UploadFile

from framework.api.dashboard import PREFIX as DASHBOARD
from framework.api.dashboard import LiveFeeds, SessionSigner, dashboard_router
from framework.api.docs import DOCS_STATIC, docs_router
from framework.api.errors import ApiError, install_error_handlers
from framework.api.inputs import decode_json, invocation_frame, predict_input
from framework.api.middleware import (
    BearerAuthMiddleware,
    BodyLimitMiddleware,
    CatchAllMiddleware,
    TimeoutMiddleware,
    has_api_key,
    unauthorized,
)
from framework.api.models import (
    JOB_ID_PATTERN,
    NAME_PATTERN,
    ErrorBody,
    EvaluationOut,
    ExperimentCreate,
    ExperimentOut,
    ExperimentTypeOut,
    JobAccepted,
    JobOut,
    PluginHealth,
    PredictionsOut,
    PublishedOut,
    RecordsIn,
    TrainIn,
    VersionOut,
)
from framework.config import API_KEY_ENV, HubConfig, load_config
from framework.ExperimentHub import ExperimentHub
from framework.monitoring import json_safe
from framework.plugins.datastream import input_queue
from framework.records import FILE_READERS, MAX_CELLS, encode_records, load_frame
from framework.store import CHAMPION

__all__ = ["API_KEY_ENV", "HUB_DEADLINE_S", "OPEN_PATHS", "create_app"]

log = logging.getLogger(__name__)

OPEN_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
DATASETS_DIR = "datasets"
HUB_DEADLINE_S = 10.0
HUB_THREADS = 32
_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "a CSV, Parquet or Excel file"}},
}
PREDICT_CONTENT: dict[str, Any] = {
    "application/json": {
        "schema": {
            "anyOf": [
                {"$ref": "#/components/schemas/RecordsIn"},
                {"type": "array", "items": {"type": "object"}, "minItems": 1, "description": "bare records"},
                {
                    "type": "object",
                    "required": ["columns", "data"],
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {"type": "array", "items": {"type": "array"}},
                    },
                    "description": "split JSON",
                },
            ]
        }
    },
    "text/csv": {"schema": {"type": "string"}},
    "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
}
INVOCATIONS_CONTENT: dict[str, Any] = {
    "application/json": {
        "schema": {
            "type": "object",
            "description": "exactly one of dataframe_split, dataframe_records, instances, inputs (MLflow's formats)",
            "properties": {
                "dataframe_split": {"type": "object"},
                "dataframe_records": {"type": "array", "items": {"type": "object"}},
                "instances": {},
                "inputs": {},
            },
        }
    },
    "text/csv": {"schema": {"type": "string"}},
}

Name = Annotated[str, PathParam(pattern=NAME_PATTERN, description="experiment name")]
Version = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="model version")]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer, all with the one error body."""
    return {status: {"model": ErrorBody, "description": "error"} for status in statuses}


async def get_hub(request: Request) -> ExperimentHub:  # async: a sync dependency would take a pool thread
    """The hub of the app serving this request."""
    return request.app.state.hub


Hub = Annotated[ExperimentHub, Depends(get_hub)]


async def hub_call(request: Request, function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking hub call on the app's hub pool within the app's deadline; past it, answer 503."""
    state = request.app.state
    future = asyncio.get_running_loop().run_in_executor(state.hub_pool, functools.partial(function, *args, **kwargs))
    try:
        return await asyncio.wait_for(future, state.hub_deadline_s)
    except TimeoutError:
        raise ApiError(
            503,
            f"the hub did not answer within {state.hub_deadline_s:g} s: a service it needs (MLOps store, broker) "
            "is slow or not answering; retry later",
        ) from None


def create_app(
    hub_or_config: ExperimentHub | HubConfig | str | Path | None = None,
    *,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    max_cells: int = MAX_CELLS,
    hub_deadline_s: float = HUB_DEADLINE_S,
) -> FastAPI:
    """Build the REST app around a hub, or around a hub it builds (and shuts down) from a config.

    ``hub_or_config``: an ``ExperimentHub`` (the caller keeps ownership), a ``HubConfig``, a config path, or None for
    ``./hub_config.yaml`` or else the embedded default. ``api_key`` overrides ``global.api_key`` and
    ``$EXPERIMENTHUB_API_KEY``; an empty key means no auth. ``max_body_bytes`` overrides
    ``global.api.max_body_bytes`` (default 8 MiB); ``global.api`` also sets the request timeout and CORS origins.
    ``max_cells`` caps uploaded files; ``hub_deadline_s`` bounds every hub call of a request.
    """
    if isinstance(hub_or_config, ExperimentHub):
        given_hub: ExperimentHub | None = hub_or_config
        config = hub_or_config.config
    else:
        given_hub = None
        config = hub_or_config if isinstance(hub_or_config, HubConfig) else load_config(hub_or_config)
    key = api_key if api_key is not None else (config.global_.api_key or os.environ.get(API_KEY_ENV) or "")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if given_hub is not None:
                app.state.hub = given_hub
                yield
                app.state.live_feeds.close()
                return
            hub = await run_in_threadpool(ExperimentHub.from_hub_config, config)
            app.state.hub = hub
            app.state.live_feeds = LiveFeeds(hub)
            try:
                yield
            finally:
                app.state.live_feeds.close()
                await run_in_threadpool(hub.shutdown)
        finally:  # threads stuck on a hung service are not waited for
            app.state.hub_pool.shutdown(wait=False, cancel_futures=True)
            app.state.health_pool.shutdown(wait=False, cancel_futures=True)

    signer = SessionSigner(key) if key else None
    limits = config.global_.api
    middleware = [Middleware(CatchAllMiddleware), Middleware(TimeoutMiddleware, seconds=limits.request_timeout)]
    if limits.cors_origins:  # off unless origins are listed
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=limits.cors_origins,
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    if key:
        middleware.append(
            Middleware(
                BearerAuthMiddleware,
                api_key=key,
                open_paths=(*OPEN_PATHS, "/", f"{DASHBOARD}/login", f"{DASHBOARD}/logout"),
                sessions=signer,
                open_prefixes=(f"{DASHBOARD}/static/", DOCS_STATIC),
                login_path=f"{DASHBOARD}/login",
                page_prefix=DASHBOARD,
            )
        )
    middleware.append(Middleware(BodyLimitMiddleware, max_bytes=max_body_bytes or limits.max_body_bytes))
    app = FastAPI(
        title="ExperimentHub",
        version=_version(),
        summary="Train, track, serve and retrain process-monitoring experiments.",
        description=(__doc__ or "").split("Design:", 1)[-1].strip(),
        lifespan=lifespan,
        middleware=middleware,
        docs_url=None,  # served by docs_router with local assets (no CDN)
        redoc_url=None,
    )
    if given_hub is not None:
        app.state.hub = given_hub
    app.state.live_feeds = LiveFeeds(given_hub) if given_hub is not None else None
    app.state.max_cells = max_cells
    app.state.hub_pool = concurrent.futures.ThreadPoolExecutor(HUB_THREADS, thread_name_prefix="hub-call")
    app.state.health_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="health")
    app.state.hub_deadline_s = hub_deadline_s
    install_error_handlers(app)
    app.include_router(_open_router(key))
    app.include_router(docs_router(app.title))
    app.include_router(dashboard_router(signer))
    # The bearer scheme is enforced by BearerAuthMiddleware (before any body is read); this only documents it.
    secured = [Depends(HTTPBearer(auto_error=False, description="the hub's API key"))] if key else []
    app.include_router(_router(), dependencies=secured, responses=_errors(401) if key else None)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("experimenthub")
    except PackageNotFoundError:
        return "unknown"


def _open_router(key: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/", include_in_schema=False)
    def index(request: Request) -> Response:
        """A browser goes to the dashboard; a JSON client gets links."""
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(DASHBOARD, status_code=307)
        return JSONResponse(
            {"ui": DASHBOARD, "docs": "/docs", "redoc": "/redoc", "openapi": "/openapi.json", "health": "/health"}
        )

    @router.get(
        "/health",
        response_model=dict[str, PluginHealth],
        responses={
            503: {"model": dict[str, PluginHealth], "description": "a plugin is unhealthy"},
            **_errors(401),
        },
    )
    async def health(
        request: Request,
        hub: Hub,
        details: Annotated[
            bool, Query(description="include each plugin's details (needs the key when one is set)")
        ] = False,
    ) -> Response:
        """Each plugin's state: 200 when every plugin is healthy, 503 otherwise; no key needed. Details (hosts,
        paths, queue depths, versions) come with the API key, or with ``?details=true`` when no key is set.

        Runs on its own threads: store calls of other requests never hold it up."""
        keyed = bool(key) and has_api_key(request.headers, key.encode())
        if details and key and not keyed:
            return unauthorized()
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(request.app.state.health_pool, hub.check_plugin_health)
        healthy = bool(report) and all(entry["healthy"] for entry in report.values())
        if not (details or keyed):
            report = {ptype: {"healthy": entry["healthy"]} for ptype, entry in report.items()}
        return JSONResponse(json_safe(report), status_code=200 if healthy else 503)

    return router


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/experiment-types", tags=["experiments"])
    async def experiment_types(hub: Hub) -> list[ExperimentTypeOut]:
        """Experiment types this hub's config lists and enables: the only ones that can be created."""
        return [
            ExperimentTypeOut(name=e.name, module=e.module, class_name=e.class_name)
            for e in hub.available_experiments.values()
        ]

    @router.get("/experiments", tags=["experiments"], responses=_errors(503))
    async def list_experiments(request: Request, hub: Hub) -> list[ExperimentOut]:
        """Every experiment in the MLOps store."""
        return [ExperimentOut(**info.to_dict()) for info in await hub_call(request, hub.experiments)]

    @router.post("/experiments", status_code=201, tags=["experiments"], responses=_errors(409, 413, 422, 503))
    async def create_experiment(body: ExperimentCreate, request: Request, hub: Hub) -> ExperimentOut:
        """Create an experiment of a listed type with a validated spec (409 if the name is taken)."""
        info = await hub_call(request, hub.create_experiment, body.name, body.type, body.spec, exist_ok=body.exist_ok)
        return ExperimentOut(**info.to_dict())

    @router.get("/experiments/{name}", tags=["experiments"], responses=_errors(404, 422, 503))
    async def get_experiment(name: Name, request: Request, hub: Hub) -> ExperimentOut:
        return ExperimentOut(**(await hub_call(request, hub.get_experiment, name)).to_dict())

    @router.delete("/experiments/{name}", status_code=204, tags=["experiments"], responses=_errors(404, 422, 503))
    async def delete_experiment(name: Name, request: Request, hub: Hub) -> Response:
        """Delete the experiment, its runs and its registered model; cancel its jobs."""
        await hub_call(request, hub.delete_experiment, name)
        return Response(status_code=204)

    @router.post(
        "/experiments/{name}/train",
        status_code=202,
        tags=["training"],
        responses=_errors(404, 413, 422, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": TrainIn.model_json_schema(ref_template="#/components/schemas/{model}")
                    },
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary", "description": "a CSV file"}},
                        }
                    },
                },
            }
        },
    )
    async def train(name: Name, request: Request, response: Response, hub: Hub) -> JobAccepted:
        """Queue a training job on JSON records (or an envelope), a CSV upload, or a dataset reference.

        Answers 202 with the job id; poll ``GET /jobs/{job_id}``.
        """
        if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            job_id = await _train_upload(hub, name, request)
        else:
            body = await run_in_threadpool(_parse_train_body, await request.body())
            if body.dataset is not None:
                path = hub.state_dir / DATASETS_DIR / body.dataset
                if not path.is_file():
                    raise ApiError(404, f"no dataset {body.dataset!r} in the hub's datasets folder", field="dataset")
                data: Any = path
            else:
                data = body.records
            job_id = await hub_call(request, hub.submit_training, name, data)
        status_url = f"/jobs/{job_id}"
        response.headers["Location"] = status_url
        return JobAccepted(job_id=job_id, experiment=name, status_url=status_url)

    @router.post(
        "/experiments/{name}/retrain", status_code=202, tags=["training"], responses=_errors(404, 413, 422, 503)
    )
    async def retrain(
        name: Name, request: Request, response: Response, hub: Hub, body: Annotated[RecordsIn | None, Body()] = None
    ) -> JobAccepted:
        """Queue a retrain job: the newest training data plus the optional new records, cut to the spec's window.

        ``champion`` moves only if the new version validates. Answers 202 with the job id.
        """
        job_id = await hub_call(request, hub.submit_retrain, name, body.records if body is not None else None)
        status_url = f"/jobs/{job_id}"
        response.headers["Location"] = status_url
        return JobAccepted(job_id=job_id, experiment=name, status_url=status_url)

    @router.get("/jobs/{job_id}", tags=["training"], responses=_errors(404, 422, 503))
    async def get_job(job_id: Annotated[str, PathParam(pattern=JOB_ID_PATTERN)], request: Request, hub: Hub) -> JobOut:
        """A training job's state (queued, running, succeeded, failed, cancelled) and its result or error."""
        info = await hub_call(request, hub.job, job_id)
        return JobOut(**json_safe(info.to_dict()))

    @router.post(
        "/experiments/{name}/predict",
        tags=["serving"],
        response_model=PredictionsOut,
        responses=_errors(404, 413, 422, 503),
        openapi_extra={"requestBody": {"required": True, "content": PREDICT_CONTENT}},
    )
    async def predict(
        name: Name,
        request: Request,
        hub: Hub,
        version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="a model version")] = None,
        alias: Annotated[str | None, Query(pattern=NAME_PATTERN, description="a model alias")] = None,
    ) -> Response:
        """Score rows with the served model (the champion unless ``version`` or ``alias`` says otherwise).

        The body: the records envelope, a bare list of records, split JSON (``{"columns", "data"}``), a CSV body
        (``text/csv``) or a file upload (field ``file``). The answer is the records envelope with ``model_version``,
        ``champion`` (and ``warning`` when the experiment has no champion), and the ``X-Model-Version`` header.
        """
        input_id, data = await _scoring_input(request, predict_input)
        frame = await hub_call(request, hub.predict, name, data, version=version, alias=alias)
        extra = {"input_id": input_id} if input_id else {}
        payload = await run_in_threadpool(encode_records, frame, **extra, **_served(frame))
        return Response(payload, media_type="application/json", headers=_served_headers(frame))

    @router.post(
        "/experiments/{name}/evaluate",
        tags=["serving"],
        responses=_errors(404, 413, 422, 503),
        openapi_extra={"requestBody": {"required": True, "content": PREDICT_CONTENT}},
    )
    async def evaluate(
        name: Name,
        request: Request,
        hub: Hub,
        version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="a model version")] = None,
        alias: Annotated[str | None, Query(pattern=NAME_PATTERN, description="a model alias")] = None,
    ) -> EvaluationOut:
        """Metrics of the served model against labelled rows (any body ``/predict`` accepts): detection metrics for
        fault detection, forecast metrics for time series."""
        _, data = await _scoring_input(request, predict_input)
        metrics = await hub_call(request, hub.evaluate, name, data, version=version, alias=alias)
        return EvaluationOut(experiment=name, metrics=json_safe(dict(metrics)))

    @router.post(
        "/experiments/{name}/invocations",
        tags=["serving"],
        responses={200: {"description": 'MLflow\'s scoring answer: {"predictions": [...]}'}, **_errors(404, 413, 422)},
        openapi_extra={"requestBody": {"required": True, "content": INVOCATIONS_CONTENT}},
    )
    async def invocations(name: Name, request: Request, hub: Hub) -> Response:
        """MLflow's scoring protocol, so MLflow scoring clients work unchanged: one of ``dataframe_split``,
        ``dataframe_records``, ``instances`` or ``inputs`` (or a ``text/csv`` body); answers
        ``{"predictions": [...]}`` with ``model_version`` and ``champion`` beside it (the champion scores)."""
        _, data = await _scoring_input(request, lambda raw: (None, invocation_frame(raw)))
        frame = await hub_call(request, hub.predict, name, data)
        envelope = await run_in_threadpool(encode_records, frame)  # the same encoding as /predict: every digit
        answer = {"predictions": json.loads(envelope)["records"], **_served(frame)}
        return JSONResponse(answer, headers=_served_headers(frame))

    @router.post(
        "/experiments/{name}/records", status_code=202, tags=["serving"], responses=_errors(404, 413, 422, 503)
    )
    async def publish_records(name: Name, body: RecordsIn, request: Request, hub: Hub) -> PublishedOut:
        """Publish records to the stream's input queue ``<name>.input`` (503 without a datastream plugin)."""
        await hub_call(request, hub.get_experiment, name)
        ids = await hub_call(request, hub.publish_records, name, body.records)
        return PublishedOut(queue=input_queue(name), records=len(body.records), message_ids=ids)

    @router.get("/experiments/{name}/monitoring", tags=["monitoring"], responses=_errors(404, 422, 503))
    async def monitoring(
        name: Name, request: Request, hub: Hub, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> dict[str, Any]:
        """The latest window of each recent scorer (alarm rate, score CUSUM over its limit, per-feature drift
        ratio: statistic over its calibrated threshold, above 1 is drift) and the recent drift, fault, alert and
        retrain events, newest first."""
        return await hub_call(request, hub.monitoring_report, name, limit)

    @router.get("/experiments/{name}/versions", tags=["models"], responses=_errors(404, 422, 503))
    async def versions(name: Name, request: Request, hub: Hub) -> list[VersionOut]:
        """Every model version, newest first, with its aliases (``champion`` marks the one in service)."""
        champion = (await hub_call(request, hub.get_experiment, name)).champion
        return [_version_out(v, champion) for v in await hub_call(request, hub.versions, name)]

    @router.post("/experiments/{name}/versions/{version}/promote", tags=["models"], responses=_errors(404, 422, 503))
    async def promote(name: Name, version: Version, request: Request, hub: Hub) -> VersionOut:
        """Move ``champion`` to this version."""
        await hub_call(request, hub.get_experiment, name)
        promoted = await hub_call(request, hub.promote, name, version)
        return _version_out(promoted, promoted.version)

    @router.get(
        "/experiments/{name}/figures/{figure}",
        tags=["models"],
        responses={
            200: {
                "description": "the plotly figure",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/html": {"schema": {"type": "string"}},
                },
            },
            **_errors(404, 422, 503),
        },
    )
    async def figure(
        name: Name,
        figure: Annotated[str, PathParam(pattern=NAME_PATTERN, description="figure name")],
        request: Request,
        hub: Hub,
        format: Annotated[
            Literal["json", "html"], Query(description="plotly JSON, or a standalone HTML page")
        ] = "json",
        version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
        plotlyjs: Annotated[
            Literal["local", "inline"],
            Query(description="html: plotly.js served by this API (default), or inlined in the page"),
        ] = "local",
    ) -> Response:
        """A figure stored with a version's training run (the champion by default)."""
        await hub_call(request, hub.get_experiment, name)
        fig = await hub_call(request, hub.figure, name, figure, version=version)
        if format == "html":
            import plotly.io

            local = f"{request.scope.get('root_path', '')}{DASHBOARD}/static/plotly.min.js"
            include = local if plotlyjs == "local" else True
            html = await run_in_threadpool(plotly.io.to_html, fig, include_plotlyjs=include, full_html=True)
            return HTMLResponse(html)
        return JSONResponse(json_safe(fig))

    return router


def _version_out(version: Any, champion: int | None) -> VersionOut:
    """A version's fields; ``champion`` (from the experiment) is added to its aliases, since a store's
    version listing may omit aliases (MLflow's ``search_model_versions`` does)."""
    aliases = list(version.aliases)
    if version.version == champion and CHAMPION not in aliases:
        aliases.append(CHAMPION)
    return VersionOut(
        name=version.name,
        version=version.version,
        run_id=version.run_id,
        aliases=aliases,
        created=version.created,
        tags=dict(version.tags),
    )


def _parse_train_body(raw: bytes) -> TrainIn:
    """Decode and validate a JSON training body; failures become the usual 422."""
    payload = decode_json(raw)
    try:
        return TrainIn.model_validate(payload)
    except pydantic.ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False, include_url=False)]
        raise RequestValidationError(errors) from None


def _served(frame: Any) -> dict[str, Any]:
    """What scored, from ``hub.predict``'s ``attrs``: model_version, champion and maybe a warning."""
    return {k: frame.attrs[k] for k in ("model_version", "champion", "warning") if k in frame.attrs}


def _served_headers(frame: Any) -> dict[str, str]:
    return {"X-Model-Version": str(frame.attrs["model_version"])} if "model_version" in frame.attrs else {}


async def _scoring_input(request: Request, parse_json: Any) -> tuple[str | None, Any]:
    """``(input id, rows)`` of a scoring body: a file upload, ``text/csv``, or JSON decoded by ``parse_json``."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        return None, await _read_upload(request)
    raw = await request.body()
    if content_type.startswith("text/csv"):
        return None, await run_in_threadpool(_csv_frame, raw)
    return await run_in_threadpool(parse_json, raw)


def _csv_frame(raw: bytes) -> Any:
    import io

    import pandas as pd

    try:
        return pd.read_csv(io.BytesIO(raw), float_precision="round_trip")
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise ApiError(422, f"cannot read the CSV body: {exc}", field="body") from None


async def _read_upload(request: Request) -> Any:
    """The uploaded file (field ``file``) as a DataFrame."""

    async def read(path: Path) -> Any:
        return await run_in_threadpool(load_frame, path, max_cells=request.app.state.max_cells)

    return await _with_upload(request, read)


async def _train_upload(hub: ExperimentHub, name: str, request: Request) -> str:
    """Spool an uploaded file (field ``file``) to a named temporary file and queue training on it."""

    async def submit(path: Path) -> str:
        frame = await run_in_threadpool(load_frame, path, max_cells=request.app.state.max_cells)
        return await hub_call(request, hub.submit_training, name, frame)

    return await _with_upload(request, submit)


async def _with_upload(request: Request, use: Any) -> Any:
    """Spool an uploaded file (field ``file``) to a named temporary file and ``await use(path)``."""
    from starlette.exceptions import HTTPException

    try:
        async with request.form(max_files=1, max_fields=4) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "multipart body needs a file in the field 'file'", field="file")
            suffix = Path(upload.filename or "upload.csv").suffix.lower() or ".csv"
            if suffix not in FILE_READERS:
                raise ApiError(
                    422, f"unsupported file type {suffix!r}; use one of {', '.join(FILE_READERS)}", field="file"
                )
            with tempfile.TemporaryDirectory(prefix="experimenthub-upload-") as tmp:
                path = Path(tmp) / f"upload{suffix}"
                await run_in_threadpool(_copy_upload, upload, path)
                return await use(path)
    except HTTPException as exc:
        if exc.status_code == 400:  # Starlette's malformed-multipart answer
            raise ApiError(422, f"malformed multipart body: {exc.detail}", field="file") from None
        raise


def _copy_upload(upload: UploadFile, path: Path) -> None:
    upload.file.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out)
