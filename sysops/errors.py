"""Error pages that say what happened and what to do, instead of a bare status line.

Both render without the request's context: a page about a broken database must not touch the
database (sessions, the user), and a request for an unknown host must not ask for its host.
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.template.loader import render_to_string
from django.views import defaults

from sysops.dbretry import is_busy, is_unwritable

RETRY_AFTER_S = 5


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, DisallowedHost):
        domain, _ = split_domain_port(request.META.get("HTTP_HOST", ""))
        return HttpResponse(
            render_to_string("sysops/unknown_host.html", {"host": domain}), status=400
        )
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Django calls this while handling the exception: a database that is busy or cannot be
    written is a 503 with a "try again" page, anything else the usual 500."""
    exc = sys.exception()
    busy = is_busy(exc)
    if busy or is_unwritable(exc):
        response = HttpResponse(
            render_to_string(
                "sysops/unavailable.html",
                {"busy": busy, "var_dir": settings.VAR_DIR, "retry_after_s": RETRY_AFTER_S},
            ),
            status=503,
        )
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
    return defaults.server_error(request)
