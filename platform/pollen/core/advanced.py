"""Advanced training settings: the optional knobs a request may carry, checked one way everywhere."""

from __future__ import annotations

from typing import Any

from pollen.core.errors import ApiError

Limits = dict[str, tuple[float, float]]


def advanced_check(advanced: dict[str, Any], *, limits: Limits) -> dict[str, Any]:
    """Return ``advanced`` once every setting is known and within ``limits``.

    A refusal names the setting as the request does (``fields.advanced.<name>``), so a form
    can point at the field that needs fixing.
    """
    for name, value in advanced.items():
        if name not in limits:
            raise ApiError(
                f"Unknown advanced setting '{name}'. Known: {', '.join(sorted(limits))}.",
                code="unknown_field",
                fields={"advanced": {name: "Unknown setting."}},
            )
        low, high = limits[name]
        if isinstance(low, bool):  # a switch: (False, True)
            if not isinstance(value, bool):
                raise ApiError(
                    f"'{name}' is a switch: send true or false.",
                    code="invalid",
                    fields={"advanced": {name: "true or false."}},
                )
            continue
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not low <= value <= high
        ):
            raise ApiError(
                f"'{name}' must be a number between {low} and {high}.",
                code="invalid",
                fields={"advanced": {name: f"Between {low} and {high}."}},
            )
    return dict(advanced)
