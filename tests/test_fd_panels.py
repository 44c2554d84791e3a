"""The descriptor panels draw a result row's detail, escaped: targets come from the worker."""

from django.template.loader import render_to_string

from sysops.models import Run

HOSTILE = "/tmp/<script>alert(1)</script>"


def render(rows):
    return render_to_string("sysops/_run_results.html", {"run": Run(results=rows)})


def test_the_fd_table_lists_each_descriptor_and_the_gap():
    detail = {
        "panel": "fd_table",
        "fds": [
            {"fd": 0, "target": "pipe:[12]", "cloexec": False},
            {"fd": 3, "target": HOSTILE, "cloexec": True},
            {"fd": 4095, "target": None, "cloexec": None},
        ],
        "count": 4000,
        "omitted": 3997,
        "gap_after": 3,
    }
    html = render([{"metric": "descriptor table", "value": 4000, "unit": "fds", "detail": detail}])
    assert "pipe:[12]" in html and "(closed meanwhile)" in html
    assert "… 3997 more …" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_the_listings_stand_side_by_side_with_the_marker_shown():
    column = {"title": "without O_CLOEXEC", "marker": "/tmp/marker-plain", "marker_fd": 5}
    detail = {
        "panel": "fd_listing",
        "columns": [
            {**column, "fds": [[0, "pipe:[1]"], [3, None], [5, "/tmp/marker-plain"]]},
            {**column, "title": "with <b>O_CLOEXEC</b>", "fds": [[0, "pipe:[1]"]]},
        ],
    }
    html = render([{"metric": "children", "value": 2, "unit": "listings", "detail": detail}])
    assert html.count("← the marker") == 1
    assert "own descriptor)" in html
    assert "with &lt;b&gt;O_CLOEXEC&lt;/b&gt;" in html
