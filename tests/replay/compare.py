"""Hold an answer against a recording: every key Zoho sent is there, with Zoho's JSON type.

Values are not compared (another org's names, ids and times cannot match ours); shapes are,
except for keys whose values are Zoho's own vocabulary rather than org data (an error
``code``, a field's ``data_type``), which a caller names in ``same_values``.
Keys the recording marks as org-specific are skipped wherever they appear, and keys the
answer has beyond the recording are allowed, since a trimmed or older recording does not
list every key Zoho has since added.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def json_type(value: Any) -> str:
    """JSON's own type names; integers and decimals are both "number", as on the wire."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"{value!r} is not a JSON value")


def differences(
    recorded: Any,
    actual: Any,
    *,
    skip: Collection[str] = (),
    values_vary: bool = False,
    nullable: Collection[str] = (),
    same_values: Collection[str] = (),
    path: str = "$",
) -> list[str]:
    """Where ``actual`` does not have the recording's keys and types, one line per place.

    ``values_vary`` is for record data, where a field is null in one record and set in
    another: there a null on either side says nothing about the shape. Elsewhere (metadata,
    verdicts, errors) Zoho's non-null value answered with null is a difference, such as a
    ``lookup`` of ``{}`` answered with null. ``nullable`` names keys whose null is a value
    the scenario could not avoid (no next page to hand a token for), not a shape.
    """
    if recorded is None:
        return []
    if actual is None:
        if values_vary or path.rsplit(".", 1)[-1] in nullable:
            return []
        return [f"{path}: null where Zoho sends {json_type(recorded)}"]
    if json_type(recorded) != json_type(actual):
        return [f"{path}: {json_type(actual)} where Zoho sends {json_type(recorded)}"]
    held = path.rsplit(".", 1)[-1] in same_values and not isinstance(recorded, (dict, list))
    if held and actual != recorded:
        return [f"{path}: {actual!r} where Zoho sends {recorded!r}"]
    found: list[str] = []
    if isinstance(recorded, dict):
        for key, value in recorded.items():
            if key in skip:
                continue
            where = f"{path}.{key}"
            if key not in actual:
                found.append(f"{where}: missing")
                continue
            found.extend(
                differences(
                    value,
                    actual[key],
                    skip=skip,
                    values_vary=values_vary,
                    nullable=nullable,
                    same_values=same_values,
                    path=where,
                )
            )
    elif isinstance(recorded, list) and recorded:
        if not actual:
            if not values_vary:
                found.append(f"{path}: empty where Zoho sends elements")
            return found
        for index, value in enumerate(recorded):
            partner = actual[min(index, len(actual) - 1)]
            found.extend(
                differences(
                    value,
                    partner,
                    skip=skip,
                    values_vary=values_vary,
                    nullable=nullable,
                    same_values=same_values,
                    path=f"{path}[{index}]",
                )
            )
    return found
