"""Response headers and edge cases of serving: a Content-Security-Policy that allows only our
own scripts and styles, static file paths that escape the static directories as 404, and a
websocket to an unknown path closed quietly."""

from __future__ import annotations

from collections.abc import Callable

from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpRequest, HttpResponse

# Our pages load scripts, styles and images from this site only (htmx, uPlot and ours are
# static files; JSON data travels in <script type="application/json">, which is not run), and
# open websockets back to it. No inline script or style element is allowed: templates use
# static/sysops/playground.css. Style attributes are (a run's colour swatch, a bar's width):
# they cannot run code, and every value in them is escaped by the templates.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


class StaticFiles(ASGIStaticFilesHandler):
    """Django's static files handler, with a path that leaves the static directories
    (``/static/..%2f..%2fsettings.py``) answered 404 rather than raised as a 500."""

    def serve(self, request: HttpRequest) -> HttpResponse:
        try:
            return super().serve(request)
        except SuspiciousFileOperation:
            raise Http404("no such static file") from None


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Every websocket path no route matches: accepted and closed with 4404, without the
    traceback channels' router logs for an unmatched path."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=4404)
