from django.urls import path

from sysops import consumers

websocket_urlpatterns = [
    path("ws/runs/", consumers.DashboardConsumer.as_asgi()),
    path("ws/runs/<int:run_id>/", consumers.RunConsumer.as_asgi()),
    path("ws/watch/", consumers.RunConsumer.as_asgi()),
]
