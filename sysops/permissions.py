"""Who may do what. On loopback anyone at this machine may; elsewhere only signed-in users."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def can_use(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """View pages and live streams, start and cancel runs."""
    if not settings.SYSOPS_REQUIRE_LOGIN:
        return True
    return user is not None and user.is_authenticated


def can_cancel(user: AbstractBaseUser | AnonymousUser | None, run_owner_id: int | None) -> bool:
    """Stop a run: its owner or staff. A run nobody owns (queued on a loopback install without
    sign-in) may be stopped by anyone who may use the playground."""
    if not can_use(user):
        return False
    if run_owner_id is None:
        return True
    if user is None or not user.is_authenticated:
        return False
    return bool(user.is_staff) or user.pk == run_owner_id
