"""Form fields experiments share."""

from __future__ import annotations

from typing import Any

from django import forms

TEXT_MAX_CHARS = 200


class IntListField(forms.CharField):
    """Sweep points typed as "0, 64, 256": distinct integers in [min_value, max_value], at
    least ``min_items`` and at most ``max_items`` of them, cleaned to a sorted list. Also takes
    the stored list back (a run's parameters re-validated, or shown again in the form)."""

    def __init__(
        self, *, min_value: int, max_value: int, min_items: int = 1, max_items: int, **kwargs: Any
    ) -> None:
        self.min_value, self.max_value = min_value, max_value
        self.min_items, self.max_items = min_items, max_items
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(map(str, value)) if isinstance(value, list | tuple) else value

    def to_python(self, value: Any) -> list[int]:  # type: ignore[override]
        text = super().to_python(self.prepare_value(value)).strip("[] ")
        if len(text) > TEXT_MAX_CHARS:
            raise forms.ValidationError(f"Keep it under {TEXT_MAX_CHARS} characters.")
        words = [word.strip() for word in text.replace(";", ",").split(",") if word.strip()]
        try:
            items = sorted({int(word) for word in words})
        except ValueError:
            raise forms.ValidationError(
                "Give whole numbers separated by commas, e.g. 0, 64, 256."
            ) from None
        if not self.min_items <= len(items) <= self.max_items:
            raise forms.ValidationError(
                f"Give {self.min_items} to {self.max_items} different values; got {len(items)}."
            )
        outside = [v for v in items if not self.min_value <= v <= self.max_value]
        if outside:
            raise forms.ValidationError(
                f"Each value must be between {self.min_value} and {self.max_value}; "
                f"{', '.join(map(str, outside))} is not."
            )
        return items

    def validate(self, value: Any) -> None:
        # CharField's checks apply to text; the list was checked in to_python.
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")


def warmup_field(
    *, max_value: int, initial: int, help_text: str = "Repetitions run first and discarded."
) -> forms.IntegerField:
    """The warm-up count of a timing form: work run first and discarded."""
    return forms.IntegerField(
        label="Warm-up", min_value=0, max_value=max_value, initial=initial, help_text=help_text
    )
