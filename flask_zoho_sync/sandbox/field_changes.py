"""What a Zoho admin does to a module's fields after a sync was set up (issue 19).

Deleting, renaming, retyping or locking a custom field, or removing a picklist value, are
all done in Zoho's setup pages, never through the records API. The sandbox offers them on
its control API so tests can change the schema under a running sync and see the answers a
real org would give next (docs/zoho-api-notes.md, "Field changes"):

* the field list (``GET /settings/fields``) shows the change at once; a renamed field keeps
  its ``id``, which is how a client can follow it;
* a write naming a deleted field, or a field now read-only, is refused per record with
  ``INVALID_DATA`` and ``details.api_name`` (and ``json_path``), the shape of every other
  per-record INVALID_DATA (reference §2.6, §4.5);
* a value of the new type's wrong kind, or a picklist value no longer offered, is refused
  with ``details.expected_data_type``, as for any other bad value.

Only custom fields change: Zoho does not let an admin delete, rename or retype a standard
field.
"""

from __future__ import annotations

from typing import Any

from .fields import (
    CUSTOM_TYPES,
    FieldSpec,
    FieldSpecError,
    ValueProblem,
    coerce_value,
    custom_field,
)
from .state import SandboxState


def removed_fields(state: SandboxState, module: str) -> set[str]:
    """API names of fields an admin deleted: a write naming one is refused."""
    return set(state.data.get("removed_fields", {}).get(module, []))


def _custom_entry(state: SandboxState, module: str, api_name: str) -> dict[str, Any]:
    for entry in state.data["custom_fields"][module]:
        if entry["api_name"] == api_name:
            return entry
    if api_name in state.field_map(module):
        raise FieldSpecError(
            f"{api_name} is a standard field; Zoho lets an admin change custom fields only"
        )
    raise FieldSpecError(f"{module} has no field {api_name}")


def delete_field(state: SandboxState, module: str, api_name: str) -> None:
    """Delete a custom field and the values records held in it."""
    with state.lock:
        entry = _custom_entry(state, module, api_name)
        state.data["custom_fields"][module].remove(entry)
        removed = state.data.setdefault("removed_fields", {}).setdefault(module, [])
        if api_name not in removed:
            removed.append(api_name)
        for record in state.data["records"][module].values():
            record.pop(api_name, None)
        state.save()


def change_field(
    state: SandboxState, module: str, api_name: str, changes: dict[str, Any]
) -> FieldSpec:
    """Rename, retype, lock or unlock a custom field, or remove picklist values.

    ``changes`` keys: ``api_name`` (the new name; the field keeps its id), ``data_type``,
    ``read_only`` (bool) and ``remove_pick_list_values`` (a list). Stored values follow a
    rename; after a type change or a value removal, values the field no longer accepts are
    dropped, as Zoho clears them.
    """
    unknown = set(changes) - {"api_name", "data_type", "read_only", "remove_pick_list_values"}
    if unknown:
        raise FieldSpecError(f"unknown change(s): {', '.join(sorted(unknown))}")
    with state.lock:
        entry = _custom_entry(state, module, api_name)
        updated = dict(entry)
        new_name = str(changes.get("api_name") or api_name)
        if new_name != api_name and new_name in state.field_map(module):
            raise FieldSpecError(f"{module} already has a field {new_name}")
        updated["api_name"] = new_name
        if "data_type" in changes:
            if changes["data_type"] not in CUSTOM_TYPES:
                raise FieldSpecError(f"data_type must be one of {', '.join(CUSTOM_TYPES)}")
            updated["data_type"] = changes["data_type"]
            updated["length"] = None
        if "read_only" in changes:
            updated["read_only"] = bool(changes["read_only"])
        dropped = {str(value) for value in changes.get("remove_pick_list_values") or []}
        if dropped:
            updated["pick_list_values"] = [
                value for value in entry.get("pick_list_values") or [] if value not in dropped
            ]
        spec = custom_field(updated)
        entry.clear()
        entry.update(spec.to_json())
        _carry_values(state, module, api_name, spec)
        state.save()
        return spec


def _carry_values(state: SandboxState, module: str, old_name: str, spec: FieldSpec) -> None:
    """Move each record's value to the field's (new) name, dropping what no longer fits."""
    user_ids = {user["id"] for user in state.data["users"]}
    for record in state.data["records"][module].values():
        if old_name not in record:
            continue
        value = record.pop(old_name)
        try:
            record[spec.api_name] = coerce_value(spec, value, user_ids)
        except ValueProblem:
            record[spec.api_name] = coerce_value(spec, None, user_ids)
