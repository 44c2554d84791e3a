"""Who may do what. On loopback anyone at this machine may; elsewhere only signed-in users."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def can_use(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """View pages and live streams, start and cancel runs."""
    if not settings.SYSOPS_REQUIRE_LOGIN:
        return True
    return user is not None and user.is_authenticated
