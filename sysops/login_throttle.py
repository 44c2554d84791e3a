"""Sign-in throttling by django-axes: too many failed sign-ins from one address, or for one
user name, lock that address or name out for a cool-off time (settings AXES_*)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes's check for sign-ins over HTTP. Without a request (a management command, the test
    client's ``login``) there is no address to throttle, so it steps aside rather than raise,
    and the next backend decides."""

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)
