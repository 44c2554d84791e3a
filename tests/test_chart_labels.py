"""Every chart's legend names each series for a person, with its unit: never a raw series id
like ``requests_per_s``."""

import pytest

from sysops.experiments import registry


def default_params(experiment):
    return {name: field.initial for name, field in experiment.form_class().fields.items()}


@pytest.mark.parametrize("experiment", registry.catalog(), ids=lambda e: e.slug)
def test_every_legend_entry_is_a_human_name_with_a_unit(experiment):
    charts = experiment.charts(default_params(experiment))
    assert charts
    for chart in charts:
        for series, label in chart.to_dict()["labels"].items():
            assert label != series, (chart.id, series)
            assert label.endswith(")"), f"{chart.id}: {label!r} says no unit in parentheses"
