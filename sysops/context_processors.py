from typing import Any

from django.conf import settings
from django.http import HttpRequest


def playground(request: HttpRequest) -> dict[str, Any]:
    return {"require_login": settings.SYSOPS_REQUIRE_LOGIN}
