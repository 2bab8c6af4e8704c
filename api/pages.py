"""Pages for people (issue 15): the landing page, 我的数据 (/app/my), the department desk
(/app/desk), the auditor explorer (/app/audit), and Swagger UI (/docs) and ReDoc (/redoc).

Every page is a file of ``api/static/pages`` whose shared parts (``pages/parts``) are included
when it is served. Every asset is served from ``api/static`` (the vendor files are copied there from
``node_modules`` by ``scripts/build_pages.mjs``, run by ``make pages``): nothing is fetched from
the internet, and the Content-Security-Policy of the pages allows this origin only.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
VENDOR = STATIC / "vendor"

#: The pages load scripts, styles, images and data from this origin only (``data:``/``blob:`` for
#: the QR code image and the camera preview).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

#: Swagger UI and ReDoc start with an inline script; images from elsewhere (ReDoc's "Redocly" logo
#: is hard-coded to a CDN) are refused, so the browser never asks the internet for anything.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'"
)

PAGES = {"/": "index.html", "/app/my": "my.html", "/app/desk": "desk.html", "/app/audit": "audit.html"}

router = APIRouter(include_in_schema=False)


#: A line ``<!--#include parts/header.html -->`` of a page stands for that file of ``pages/``: the
#: head, the site header and the sign-in block the pages share are written once.
_INCLUDE = re.compile(r"^<!--#include ([\w./-]+) -->\n", re.MULTILINE)


def render_page(name: str) -> str:
    """The page ``name`` of ``static/pages`` with its includes expanded (read on each request,
    as a file would be served: an edited page shows on reload)."""
    pages = STATIC / "pages"
    return _INCLUDE.sub(
        lambda m: (pages / m[1]).read_text(encoding="utf-8"), (pages / name).read_text(encoding="utf-8")
    )


def _page(name: str) -> HTMLResponse:
    return HTMLResponse(
        render_page(name),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def _add_page(path: str, name: str) -> None:
    def page() -> HTMLResponse:
        return _page(name)

    router.add_api_route(path, page, methods=["GET"], name=f"page_{name.removesuffix('.html')}")


for _path, _name in PAGES.items():
    _add_page(_path, _name)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI from the local copy of ``swagger-ui-dist``."""
    page = get_swagger_ui_html(
        openapi_url=str(request.app.openapi_url),
        title=f"{request.app.title} — Swagger UI",
        swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge from validator.swagger.io
    )
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc from the local copy of ``redoc`` (no web fonts)."""
    page = get_redoc_html(
        openapi_url=str(request.app.openapi_url),
        title=f"{request.app.title} — ReDoc",
        redoc_js_url="/static/vendor/redoc/redoc.standalone.js",
        redoc_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def install(app: FastAPI) -> None:
    """Serve the pages, the docs and ``/static`` (the app is built with ``docs_url=None``)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
