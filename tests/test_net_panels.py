"""The socket-options panels drawn from a real probe's rows: option levels and names, and
/proc/net/tcp decoded beside its hex, everything escaped."""

import pytest

from sysops.experiments.socket_options import probe
from sysops.models import Run

from .probes.harness import run_probe

pytestmark = pytest.mark.django_db


def test_the_run_page_draws_the_option_table_and_the_decoded_proc_net_tcp(client):
    rows = run_probe(probe.run, {"scenarios": ["reuseaddr", "linger"]}).of("result")[0]["rows"]
    hostile = {
        "level": "SOL_SOCKET",
        "name": "<script>alert(1)</script>",
        "set": None,
        "got": 1,
        "unit": "boolean",
        "meaning": "",
    }
    rows.append(
        {
            "metric": "x",
            "value": 1,
            "unit": "",
            "note": "",
            "detail": {"panel": "sockopts", "options": [hostile]},
        }
    )
    run = Run.objects.create(
        experiment="socket-options",
        params={"scenarios": ["reuseaddr", "linger"]},
        status=Run.Status.SUCCEEDED,
        results=rows,
    )
    body = client.get(f"/runs/{run.pk}/").content.decode()
    assert "<code>SO_REUSEADDR</code>" in body and "<code>SOL_SOCKET</code>" in body
    assert "l_onoff=1, l_linger=0" in body
    assert "0100007F:" in body and "TIME_WAIT" in body and "<code>06</code>" in body
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
