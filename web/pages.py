"""The browser client's page: one HTML shell; its ES modules are served from /static/app/."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

APP_PAGE = Path(__file__).parent / "static" / "app" / "index.html"


async def app_page(request: Request) -> Response:
    # no-cache: a deploy must reach open browsers on their next load, not after a day.
    return FileResponse(APP_PAGE, headers={"Cache-Control": "no-cache"})


ROUTES = [Route("/", app_page, methods=["GET"])]
