"""The history's filters: by experiment, status, host and trace mode, and by owner for staff."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from sysops.experiments import registry
from sysops.models import Host, Run


class HostChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Host) -> str:
        kernel = (obj.fingerprint.get("kernel") or {}).get("release") or "?"
        return f"{obj.hostname or obj.digest[:12]} (kernel {kernel})"


class HistoryFilterForm(forms.Form):
    experiment = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *Run.Status.choices])
    host = HostChoiceField(queryset=Host.objects.none(), required=False, empty_label="any host")
    trace = forms.ChoiceField(
        required=False, choices=[("", "any trace mode"), *((v, v) for v in Run.TraceMode.values)]
    )

    def __init__(self, *args: Any, staff: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["experiment"].choices = [("", "any experiment")] + [
            (exp.slug, exp.title) for exp in registry.catalog()
        ]
        self.fields["host"].queryset = Host.objects.filter(run__isnull=False).distinct()
        if staff:
            self.fields["owner"] = forms.ModelChoiceField(
                queryset=get_user_model().objects.filter(run__isnull=False).distinct(),
                required=False,
                empty_label="any owner",
            )

    def runs(self) -> QuerySet[Run]:
        """The runs that pass the valid filters (an invalid one filters nothing)."""
        runs = Run.objects.select_related("user", "host")
        data = self.cleaned_data if self.is_valid() else {}
        if data.get("experiment"):
            runs = runs.filter(experiment=data["experiment"])
        if data.get("status"):
            runs = runs.filter(status=data["status"])
        if data.get("host"):
            runs = runs.filter(host=data["host"])
        if data.get("trace"):
            runs = runs.filter(trace_mode=data["trace"])
        if data.get("owner"):
            runs = runs.filter(user=data["owner"])
        return runs


def is_staff(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    return bool(user is not None and getattr(user, "is_staff", False))
