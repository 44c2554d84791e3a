from django.urls import path

from sysops import compare_views, downloads, trace_search, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("experiments/<slug:slug>/", views.experiment, name="experiment"),
    path("experiments/<slug:slug>/trace-estimate/", views.trace_estimate, name="trace-estimate"),
    path("runs/", views.history, name="history"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<int:run_id>/again/", views.run_again, name="run-again"),
    path("runs/<int:run_id>/trace-search/", trace_search.trace_search, name="trace-search"),
    path("runs/<int:run_id>/trace/<str:fmt>/", downloads.trace_download, name="trace-download"),
    path("runs/<int:run_id>/timeline/", views.run_timeline, name="run-timeline"),
    path("runs/<int:run_id>/bundle.json", compare_views.run_bundle, name="run-bundle"),
    path("runs/import/", compare_views.bundle_import, name="bundle-import"),
    path("compare/", compare_views.compare_pick, name="compare-pick"),
    path("compare/<str:ids>/", compare_views.compare, name="compare"),
    path("compare/<str:ids>/bundle.json", compare_views.compare_bundle, name="compare-bundle"),
]
