from django.urls import path

from sysops import downloads, trace_search, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("experiments/<slug:slug>/", views.experiment, name="experiment"),
    path("runs/", views.history, name="history"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<int:run_id>/again/", views.run_again, name="run-again"),
    path("runs/<int:run_id>/trace-search/", trace_search.trace_search, name="trace-search"),
    path("runs/<int:run_id>/trace/<str:fmt>/", downloads.trace_download, name="trace-download"),
]
