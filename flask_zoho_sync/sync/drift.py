"""Zoho's schema moved under the sync: which refusals name a whole field, not a value.

A Zoho admin can delete, retype or lock a mapped field between two runs (issue 19). The
run's mapping is built from the cached field list, so its first write naming that field is
refused, record by record, with ``INVALID_DATA`` and ``details.api_name`` (docs/
zoho-api-notes.md, "Field changes"). Failing every record for that would stop the whole
sync over one field; the push instead sends those records again without the field and
pauses the mapping row, so everything else syncs and the admin sees why one row does not.

The same code also answers for a single bad value (an email Zoho's checks refuse, a text
too long), which must stay that record's error and not pause a row. They are told apart by
the details Zoho gives:

* no ``expected_data_type`` and no ``maximum_length``: the field itself is refused
  (deleted, or read-only for the API user);
* ``expected_data_type`` that is not the type the cached metadata has for the field: the
  field's type changed in Zoho;
* anything else (the expected type is the one known, a length, a picklist value) is about
  that record's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import Any

from flask_zoho_sync.sync.mapping import Mapping

#: Zoho's ``expected_data_type`` for a bad value of each field type, where it is not the
#: type's own name: such an answer is about the value, not a type change (reference §3.1,
#: §2.6; the sandbox's fields.coerce_value gives the same names).
_EXPECTED_FOR: dict[str, frozenset[str]] = {
    "textarea": frozenset({"text"}),
    "multiselectpicklist": frozenset({"jsonarray"}),
    "currency": frozenset({"double"}),
    "lookup": frozenset({"jsonobject"}),
    "ownerlookup": frozenset({"jsonobject"}),
    "text": frozenset({"jsonarray"}),  # the Tag field: data_type text, json_type jsonarray
}


@dataclass(frozen=True)
class FieldRefusal:
    """Zoho refused one mapped field as a whole; ``reason`` is what the admin reads."""

    api_name: str
    reason: str


def field_refusal(
    code: str | None, details: MappingABC[str, Any] | None, mapping: Mapping
) -> FieldRefusal | None:
    """The field a per-record refusal names as a whole, or None when it is about the value."""
    if code != "INVALID_DATA" or not details:
        return None
    api_name = details.get("api_name")
    if not isinstance(api_name, str) or api_name in ("id", "Last_Name", "Email"):
        return None  # identity and the mandatory name are never paused: their errors are per record
    if not any(b.zoho_api_name == api_name and b.active for b in mapping.bindings):
        return None
    if "maximum_length" in details:
        return None
    expected = details.get("expected_data_type")
    if expected is None:
        return FieldRefusal(
            api_name,
            f"paused: Zoho refused the field {api_name} itself (INVALID_DATA): it was deleted "
            "or made read-only in Zoho. Host values are kept; remap the row, or restore the "
            "field in Zoho, then save the row to resume it.",
        )
    known = mapping.zoho_field(api_name)
    known_type = known.data_type if known is not None else None
    if known_type is not None and (
        expected == known_type or expected in _EXPECTED_FOR.get(known_type, frozenset())
    ):
        return None
    return FieldRefusal(
        api_name,
        f"paused: Zoho now expects {expected} values in {api_name}, not the {known_type} "
        "the mapping was made for (its type changed in Zoho). Host values are kept; refresh "
        "the Zoho fields and remap the row, then save it to resume it.",
    )


def field_refusals(
    code: str | None, details: MappingABC[str, Any] | None, mapping: Mapping
) -> list[FieldRefusal]:
    """``field_refusal`` for one record's answer, looking inside MULTIPLE_OR_MULTI_ERRORS
    (``details.errors``, reference §2.6): two fields deleted at once are refused together."""
    if code == "MULTIPLE_OR_MULTI_ERRORS" and details:
        found = []
        for error in details.get("errors") or ():
            if isinstance(error, MappingABC):
                refusal = field_refusal(error.get("code"), error.get("details"), mapping)
                if refusal is not None:
                    found.append(refusal)
        return found
    refusal = field_refusal(code, details, mapping)
    return [refusal] if refusal is not None else []


def picklist_refusal(
    details: MappingABC[str, Any] | None, payload: MappingABC[str, Any], mapping: Mapping
) -> str | None:
    """A per-record picklist refusal in words: the value sent and the values Zoho listed.

    Zoho's own answer names only the field (``expected_data_type: picklist``); the admin
    needs the value and what to use instead, or a value map on the row.
    """
    if not details or details.get("expected_data_type") not in (
        "picklist",
        "multiselectpicklist",
    ):
        return None
    api_name = details.get("api_name")
    known = mapping.zoho_field(api_name) if isinstance(api_name, str) else None
    if known is None or not isinstance(api_name, str):
        return None
    allowed = ", ".join(repr(value) for value in known.picklist_values if value != "-None-")
    return (
        f"Zoho does not accept {payload.get(api_name)!r} in {api_name}; its picklist "
        f"offered {allowed or 'no values'} when last read. Use one of them, or set a value "
        "map on the mapping row."
    )


def without_fields(payload: MappingABC[str, Any], api_names: Iterable[str]) -> dict[str, Any]:
    """``payload`` without the paused fields (the record is sent with the rest)."""
    dropped = set(api_names)
    return {name: value for name, value in payload.items() if name not in dropped}


def keys_of(mapping: Mapping, api_names: Iterable[str]) -> set[str]:
    """The mapping keys writing the given Zoho fields (to keep them out of the snapshot, so
    the held-back host values are sent once the row resumes)."""
    names = set(api_names)
    return {binding.key for binding in mapping.bindings if binding.zoho_api_name in names}
