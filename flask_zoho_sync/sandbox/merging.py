"""`POST /{module}/{master id}/actions/merge`: Zoho's Find and Merge (docs/zoho-api-notes.md,
"Merge records").

A Zoho user merging duplicates is what makes a linked record vanish while the person stays,
so the sandbox merges as Zoho documents it: up to two child records go into the master, the
master takes the child values named in ``_fields`` and keeps its own for the rest, and the
children are deleted (they show in the deleted-records list like any deletion). The answer is
immediate (``SUCCESS``); Zoho may instead schedule a large merge (``SCHEDULED`` with a
``job_id``), which the sandbox never needs to.
"""

from __future__ import annotations

from typing import Any

from .query import QueryError
from .records import _find_by_value, _reindex, _update, delete_records

#: Modules Zoho's Merge Records API accepts (of those the sandbox has).
MERGEABLE = ("Leads", "Contacts")
#: "merges up to three duplicate records into a single one": the master and two children.
MAX_CHILDREN = 2


def _invalid(message: str, **details: Any) -> QueryError:
    return QueryError("INVALID_DATA", message, details)


def _merge_entry(body: Any) -> dict[str, Any]:
    """The one element of the body's ``merge`` array."""
    entries = body.get("merge") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise QueryError("MANDATORY_NOT_FOUND", "required field not found", {"api_name": "merge"})
    if len(entries) > 1:
        raise QueryError("LIMIT_EXCEEDED", "limit exceeded", {"api_name": "merge", "limit": 1})
    if not isinstance(entries[0], dict):
        raise _invalid("invalid data", json_path="$.merge[0]", expected_data_type="jsonobject")
    return entries[0]


def _children(entry: dict[str, Any], master_id: str) -> list[tuple[str, list[str]]]:
    """Each child's id with the fields whose values it gives the master."""
    data = entry.get("data")
    if not isinstance(data, list) or not data:
        raise QueryError(
            "MANDATORY_NOT_FOUND", "required field not found", {"json_path": "$.merge[0].data"}
        )
    if len(data) > MAX_CHILDREN:
        raise QueryError(
            "LIMIT_EXCEEDED",
            "limit exceeded",
            {"json_path": "$.merge[0].data", "limit": MAX_CHILDREN},
        )
    children: list[tuple[str, list[str]]] = []
    for index, child in enumerate(data):
        path = f"$.merge[0].data[{index}]"
        if not isinstance(child, dict) or not child.get("id"):
            raise QueryError(
                "MANDATORY_NOT_FOUND", "required field not found", {"json_path": f"{path}.id"}
            )
        child_id = str(child["id"])
        if child_id == master_id or child_id in (c for c, _ in children):
            raise _invalid("the id given seems to be invalid", json_path=f"{path}.id")
        fields = child.get("_fields") or []
        if not isinstance(fields, list) or not all(
            isinstance(f, dict) and isinstance(f.get("api_name"), str) for f in fields
        ):
            raise _invalid("invalid data", json_path=f"{path}._fields")
        children.append((child_id, [f["api_name"] for f in fields]))
    return children


def _refuse_unique_clash(state: Any, module: str, taken: dict[str, Any], merging: set[str]) -> None:
    """DUPLICATE_DATA when a unique value the master takes belongs to a record outside the
    merge: checked before anything changes, so a refused merge deletes nothing."""
    for spec in state.fields(module):
        value = taken.get(spec.api_name)
        if not spec.unique or value in (None, ""):
            continue
        clashes = [
            r for r in _find_by_value(state, module, spec.api_name, value) if r["id"] not in merging
        ]
        if clashes:
            raise QueryError(
                "DUPLICATE_DATA",
                "duplicate data",
                {"api_name": spec.api_name, "duplicate_record": {"id": clashes[0]["id"]}},
            )


def merge_records(
    state: Any, module: str, master_id: str, body: Any, user_id: str
) -> tuple[dict[str, Any], list[str]]:
    """Merge the body's children into the master; return the answer element and the ids
    deleted. Raises ``QueryError`` (nothing changed) when the request names what cannot be
    merged."""
    if module not in MERGEABLE:
        raise QueryError(
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            {"resource_path_index": 0},
        )
    records = state.data["records"][module]
    master = records.get(master_id)
    if master is None:
        raise _invalid("Specified master record ID is invalid", resource_path_index=1)
    children = _children(_merge_entry(body), master_id)
    specs = state.field_map(module)
    taken: dict[str, Any] = {}
    for index, (child_id, fields) in enumerate(children):
        child = records.get(child_id)
        if child is None:
            raise _invalid(
                "the id given seems to be invalid", json_path=f"$.merge[0].data[{index}].id"
            )
        for api_name in fields:
            spec = specs.get(api_name)
            if spec is None or not spec.writable:
                raise _invalid(
                    "invalid data",
                    api_name=api_name,
                    json_path=f"$.merge[0].data[{index}]._fields",
                )
            taken[api_name] = child.get(api_name)
    _refuse_unique_clash(state, module, taken, {master_id, *(c for c, _ in children)})
    # The children go first: a unique value (Email) taken from a child is the child's own
    # until it is deleted, and would otherwise clash with it.
    _, deleted = delete_records(state, module, [child_id for child_id, _ in children], user_id)
    if taken:
        _update(state, master, taken, user_id)
        _reindex(state, module, master)
    element = {
        "code": "SUCCESS",
        "details": {"id": master_id},
        "message": "records merged successfully",
        "status": "success",
    }
    return element, deleted
