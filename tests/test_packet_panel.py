"""The packet panel: captured bytes drawn as 32-bit rows, decoded again on the web side; worker
data escaped; bytes that are not a packet become an error line, never an exception."""

import pytest
from django.template.loader import render_to_string

from sysops.models import Run
from sysops.templatetags.packet_tags import packet_diagram
from tests.toolkit.test_inet import REPLY, REPLY_RR

pytestmark = pytest.mark.django_db


def render(detail):
    run = Run.objects.create(
        experiment="raw-icmp",
        params={},
        status=Run.Status.SUCCEEDED,
        results=[{"metric": "packets", "value": 1, "unit": "", "note": "", "detail": detail}],
    )
    return render_to_string("sysops/_run_results.html", {"run": run})


def test_a_reply_is_drawn_as_its_fields_in_32_bit_rows():
    diagram = packet_diagram(REPLY.hex())
    rows = diagram["rows"]
    assert [row["offset"] for row in rows] == [0, 4, 8, 12, 16, 20, 24, 28]
    assert all(sum(cell["bits"] for cell in row["cells"]) == 32 for row in rows)
    assert [c["label"] for c in rows[0]["cells"]] == ["version", "IHL", "TOS", "total length"]
    assert rows[2]["cells"][2]["value"] == "0x33ba ✓"
    assert rows[5]["section"] == "icmp" and rows[5]["cells"][0]["value"] == "0 (echo reply)"
    assert rows[0]["hex"] == "45 00 00 54"
    assert rows[-1]["hex"].endswith("… +40 B")


def test_options_are_drawn_byte_by_byte_across_rows():
    rows = packet_diagram(REPLY_RR.hex())["rows"]
    options = [row for row in rows if row["section"] == "options"]
    assert len(options) == 10  # IHL 15: 40 bytes of options
    assert [c["label"] for c in options[0]["cells"]] == [
        "option type",
        "length",
        "pointer",
        "route slot 1",
    ]
    assert options[1]["cells"][0] == {
        "field": "options",
        "label": "route slot 1 (cont.)",
        "bits": 24,
        "value": "127.0.0.1",
    }
    assert rows[2]["cells"][2]["value"].endswith("✓ on the wire")


def test_the_panel_escapes_worker_data_and_survives_garbage():
    html = render(
        {
            "panel": "ip_packets",
            "packets": [
                {"label": "<script>alert(1)</script>", "hex": REPLY.hex(), "rtt_us": 12.5},
                {"label": "not hex", "hex": "zz<b>"},
                {"label": "short", "hex": "4500"},
            ],
            "columns": ["seq", "<i>rtt</i>"],
            "table": [[1, "<img src=x>"]],
        }
    )
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x>" not in html and "<i>rtt</i>" not in html
    assert html.count('<table class="grid">') == 1
    assert html.count("not an IPv4 packet") == 2
    assert "round trip 12.5 µs" in html
