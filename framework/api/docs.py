"""``/docs`` (Swagger UI) and ``/redoc`` with their JavaScript and CSS served by the API itself, from the installed
``fastapi-offline`` package, so the API docs work on a plant network with no internet (FastAPI's defaults load
them from a CDN). The pages carry only shapes (the OpenAPI schema), no data, so they need no key.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

__all__ = ["DOCS_STATIC", "docs_router"]

DOCS_STATIC = "/docs/static/"
ASSETS = {  # file name in fastapi_offline/static -> media type; nothing else is served
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def _assets() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def docs_router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    """The docs pages and their assets; the app is built with ``docs_url=None, redoc_url=None``."""
    router = APIRouter(include_in_schema=False)

    def static(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{DOCS_STATIC}{name}"

    @router.get("/docs")
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=root + "/docs/oauth2-redirect",
            swagger_js_url=static(request, "swagger-ui-bundle.js"),
            swagger_css_url=static(request, "swagger-ui.css"),
            swagger_favicon_url=static(request, "favicon.png"),
        )

    @router.get("/docs/oauth2-redirect")
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=request.scope.get("root_path", "") + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=static(request, "redoc.standalone.js"),
            redoc_favicon_url=static(request, "favicon.png"),
            with_google_fonts=False,
        )

    @router.get(DOCS_STATIC + "{filename}")
    def asset(filename: str) -> Response:
        if filename not in ASSETS:
            return JSONResponse({"error": {"code": 404, "message": "no such file", "field": None}}, status_code=404)
        return FileResponse(_assets() / filename, media_type=ASSETS[filename])

    return router
