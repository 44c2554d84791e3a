"""ASGI entry point: HTTP through Django (static files included), websockets through Channels.

Websockets check Origin against ALLOWED_HOSTS and carry the Django session user.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from playground import http_limits  # noqa: E402
from playground.security import NotFoundConsumer, StaticFiles  # noqa: E402
from sysops.agent.agent import ensure_embedded_agent  # noqa: E402
from sysops.routing import websocket_urlpatterns  # noqa: E402


class EmbeddedAgent:
    """Starts the embedded agent on this server's event loop when the first connection arrives."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        ensure_embedded_agent()
        return await self.app(scope, receive, send)


# Oversized and slow requests are refused by daphne itself, before it holds their bodies.
http_limits.install()

application = EmbeddedAgent(
    ProtocolTypeRouter(
        {
            "http": http_limits.BodyLimitMiddleware(StaticFiles(django_asgi_app)),
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(
                    URLRouter([*websocket_urlpatterns, re_path(r"", NotFoundConsumer.as_asgi())])
                )
            ),
        }
    )
)
