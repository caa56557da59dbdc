"""Record writes and rendering: the rules Zoho applies to insert, update, upsert, delete.

The API views and the "Zoho user" control endpoints both call these functions, so an edit
made in the sandbox UI goes through the same validation, stamps ``Modified_Time`` and
``Modified_By`` the same way and notifies the same channels as an API write. Only the
acting user differs, which is exactly what a sync's echo suppression has to tell apart.
All functions expect the caller to hold ``state.lock``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from .field_changes import removed_fields
from .fields import (
    LAYOUT,
    MODULE_IDS,
    SYSTEM_DUPLICATE_CHECK,
    FieldSpec,
    ValueProblem,
    coerce_value,
)
from .responses import error_body
from .state import SandboxState

#: Keys a client may send that are not fields and must not be treated as such.
_NOT_FIELDS = {"id", "$append_values", "Layout"}


@dataclass
class BatchOutcome:
    """Per-record results in input order, plus what changed (for notifications)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    affected: dict[str, list[str]] = field(default_factory=dict)


class DuplicateCheckError(ValueError):
    """A ``duplicate_check_fields`` entry Zoho would refuse (reference §2.6)."""

    def __init__(self, api_name: str, index: int) -> None:
        super().__init__(api_name)
        self.api_name = api_name
        self.index = index


# ------------------------------------------------------------------------- rendering
def render_value(state: SandboxState, spec: FieldSpec | None, value: Any) -> Any:
    if spec is None:
        return value
    if spec.data_type == "datetime":
        return state.show(value)
    if spec.data_type == "ownerlookup":
        ref = state.user_ref(value)
        return {"name": ref["name"], "id": ref["id"], "email": ref["email"]} if ref else None
    if spec.data_type == "boolean":
        return bool(value)
    if spec.data_type == "multiselectpicklist" or spec.json_type == "jsonarray":
        return [dict(item) if isinstance(item, dict) else item for item in value or []]
    if spec.data_type == "layout":
        return {"name": LAYOUT["name"], "id": LAYOUT["id"]}
    if spec.api_name == "Record_Status__s":
        return value or "Available"
    if spec.api_name == "Data_Source":
        return value or "API"
    if spec.data_type == "lookup" and isinstance(value, dict):
        return dict(value)
    return value


def render_record(
    state: SandboxState, module: str, record: dict[str, Any], only: list[str] | None = None
) -> dict[str, Any]:
    """A record as Zoho returns it: requested fields (all when ``only`` is None) plus id."""
    specs = state.field_map(module)
    names = list(specs) if only is None else [n for n in only if n in specs]
    out: dict[str, Any] = {}
    for name in names:
        out[name] = render_value(state, specs[name], record.get(name))
    out["id"] = record["id"]
    return out


def record_properties(state: SandboxState, record: dict[str, Any]) -> dict[str, Any]:
    """The ``$``-keys Zoho adds to a record fetched on its own (`GET /{module}/{id}`).

    They describe what the API user may do with the record (edit it, whether it is locked
    or in an approval or review), for an org with no approval processes, blueprints or
    Zia: the values a fresh org shows (recorded Leads and Contacts answers, reference §2.1).
    """
    return {
        "$currency_symbol": state.data["org"].get("currency_symbol") or "$",
        "$field_states": None,
        "$review_process": {"approve": False, "reject": False, "resubmit": False},
        "$sharing_permission": "full_access",
        "$state": "save",
        "$process_flow": False,
        "$approval": {
            "delegate": False,
            "takeover": False,
            "approve": False,
            "reject": False,
            "resubmit": False,
        },
        "$approval_state": "approved",
        "$approved": True,
        "$editable": True,
        "$locked_for_me": bool(record.get("Locked__s")),
        "$orchestration": False,
        "$pathfinder": False,
        "$in_merge": False,
        "$is_duplicate": False,
        "$review": None,
        "$stop_processing": False,
        "$data_source_details": {},
        "$wizard_connection_path": None,
        "$zia_owner_assignment": "owner_recommendation_unavailable",
        "$zia_visions": None,
        "$layout_id": {"display_label": LAYOUT["name"], "name": LAYOUT["name"], "id": LAYOUT["id"]},
    }


def render_full_record(state: SandboxState, module: str, record: dict[str, Any]) -> dict[str, Any]:
    """A record as `GET /{module}/{id}` and search return it: every field and the ``$``-keys.

    Leads add ``$converted`` and ``$converted_detail``; no recorded answer shows the detail
    of a converted lead, so it stays ``{}`` as recorded for unconverted ones and the converted
    contact is named where Zoho documents it, in ``Converted_Contact``."""
    full = {**render_record(state, module, record), **record_properties(state, record)}
    if module == "Leads":
        full["$converted"] = is_converted(record)
        full["$converted_detail"] = {}
    return full


def is_converted(record: dict[str, Any]) -> bool:
    return bool(record.get("Converted__s"))


def _user_brief(state: SandboxState, user_id: str) -> dict[str, Any] | None:
    ref = state.user_ref(user_id)
    return {"name": ref["name"], "id": ref["id"]} if ref else None


def success_details(state: SandboxState, record: dict[str, Any]) -> dict[str, Any]:
    """The ``details`` of a successful write element (reference §2.4)."""
    return {
        "Modified_Time": state.show(record["Modified_Time"]),
        "Modified_By": _user_brief(state, record["Modified_By"]),
        "Created_Time": state.show(record["Created_Time"]),
        "id": record["id"],
        "Created_By": _user_brief(state, record["Created_By"]),
    }


# --------------------------------------------------------------------- validation
def _json_path(index: int, api_name: str) -> str:
    return f"$.data[{index}].{api_name}"


def _collect_values(
    state: SandboxState, module: str, item: dict[str, Any], index: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Coerce the writable fields of one input element; unknown keys are ignored like Zoho."""
    specs = state.field_map(module)
    removed = removed_fields(state, module)
    user_ids = {u["id"] for u in state.data["users"]}
    values: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for name, raw in item.items():
        if name in _NOT_FIELDS or name.startswith("$"):
            continue
        spec = specs.get(name)
        if (spec is None and name in removed) or (spec is not None and spec.admin_read_only):
            # A field an admin deleted or locked: refused as a whole (field_changes.py).
            details = {"api_name": name, "json_path": _json_path(index, name)}
            problems.append(error_body("INVALID_DATA", "invalid data", details))
            continue
        if spec is None or not spec.writable:
            continue  # read-only and unknown fields are silently ignored (§3.1)
        try:
            values[name] = coerce_value(spec, raw, user_ids)
        except ValueProblem as problem:
            details = {**problem.details, "json_path": _json_path(index, name)}
            problems.append(error_body("INVALID_DATA", "invalid data", details))
    return values, problems


def _mandatory_problem(index: int) -> dict[str, Any]:
    details = {"api_name": "Last_Name", "json_path": _json_path(index, "Last_Name")}
    return error_body("MANDATORY_NOT_FOUND", "required field not found", details)


def _comparable(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


#: Per sandbox, (module, field) -> (the records dict indexed, {comparable value: ids}).
#: Duplicate checks run for every record of every write, so scanning all records each time
#: made a 100,000-record import quadratic. Entries are added on create and update and
#: checked on every lookup, so a stale one (value changed, record deleted) is harmless; a
#: new ``records`` dict (reset, load) rebuilds the index.
_VALUE_INDEXES: weakref.WeakKeyDictionary[SandboxState, dict[tuple[str, str], Any]] = (
    weakref.WeakKeyDictionary()
)


#: Per sandbox and module, a count of record writes, so cached listings know when to rebuild.
_VERSIONS: weakref.WeakKeyDictionary[SandboxState, dict[str, int]] = weakref.WeakKeyDictionary()


def version(state: SandboxState, module: str) -> int:
    return _VERSIONS.get(state, {}).get(module, 0)


def _changed(state: SandboxState, module: str) -> None:
    versions = _VERSIONS.setdefault(state, {})
    versions[module] = versions.get(module, 0) + 1


def _value_index(state: SandboxState, module: str, api_name: str) -> dict[Any, set[str]]:
    records = state.data["records"][module]
    indexes = _VALUE_INDEXES.setdefault(state, {})
    entry = indexes.get((module, api_name))
    if entry is None or entry[0] is not records:
        index: dict[Any, set[str]] = {}
        for record in records.values():
            _index_value(index, record, api_name)
        entry = (records, index)
        indexes[(module, api_name)] = entry
    return entry[1]


def _index_value(index: dict[Any, set[str]], record: dict[str, Any], api_name: str) -> None:
    value = record.get(api_name)
    if value in (None, "") or not isinstance(value, str | int | float | bool):
        return
    index.setdefault(_comparable(value), set()).add(record["id"])


def _reindex(state: SandboxState, module: str, record: dict[str, Any]) -> None:
    """Add a created or updated record to the indexes built so far."""
    _changed(state, module)
    for (indexed_module, api_name), (records, index) in _VALUE_INDEXES.get(state, {}).items():
        if indexed_module == module and records is state.data["records"][module]:
            _index_value(index, record, api_name)


def _find_by_value(
    state: SandboxState, module: str, api_name: str, value: Any, exclude: str | None = None
) -> list[dict[str, Any]]:
    """Live records whose field equals ``value`` (case-insensitive, like Zoho's checks)."""
    wanted = _comparable(value)
    records = state.data["records"][module]
    if isinstance(wanted, str | int | float | bool):
        ids = _value_index(state, module, api_name).get(wanted, ())
        candidates = [records[i] for i in ids if i in records]
    else:
        candidates = list(records.values())
    found = [
        record
        for record in candidates
        if record["id"] != exclude
        and record.get(api_name) not in (None, "")
        and _comparable(record.get(api_name)) == wanted
    ]
    return sorted(found, key=lambda r: r["id"])


def unique_custom_fields(state: SandboxState, module: str) -> list[str]:
    return [s.api_name for s in state.fields(module) if s.custom_field and s.unique]


def refused_email(state: SandboxState, module: str) -> list[str]:
    """``["Email"]`` when the org ticked Email's "Do not allow duplicate values" for the
    module (a Zoho setting, off in the sandbox until a test sets it through the control
    API; docs/zoho-api-notes.md, "Duplicate data on create")."""
    return ["Email"] if module in state.data.get("unique_email_modules", ()) else []


def _duplicate_problem(
    state: SandboxState,
    module: str,
    values: dict[str, Any],
    index: int,
    exclude: str | None,
) -> dict[str, Any] | None:
    """DUPLICATE_DATA for the first unique custom field whose value another record holds,
    or for Email in a module whose Email field refuses duplicates (``refused_email``)."""
    for api_name in unique_custom_fields(state, module) + refused_email(state, module):
        value = values.get(api_name)
        if value in (None, ""):
            continue
        clashes = _find_by_value(state, module, api_name, value, exclude)
        if clashes:
            other = clashes[0]
            details = {
                "api_name": api_name,
                "json_path": _json_path(index, api_name),
                "duplicate_record": {
                    "id": other["id"],
                    "module": {"api_name": module, "id": MODULE_IDS[module]},
                    "Owner": _user_brief(state, other.get("Owner") or other["Created_By"]),
                },
                "more_records": len(clashes) > 1,
            }
            return error_body("DUPLICATE_DATA", "duplicate data", details)
    return None


def resolve_duplicate_check(state: SandboxState, module: str, given: list[Any] | None) -> list[str]:
    """The matching order for upsert, per the doc's table (reference §2.6)."""
    system = list(SYSTEM_DUPLICATE_CHECK[module])
    unique = unique_custom_fields(state, module)
    if not given:
        return system + unique
    for index, name in enumerate(given):
        if not isinstance(name, str) or name not in system + unique:
            raise DuplicateCheckError(str(name), index)
    ordered = list(dict.fromkeys(given))
    return ordered + [name for name in unique if name not in ordered]


def _combine(problems: list[dict[str, Any]]) -> dict[str, Any]:
    if len(problems) == 1:
        return problems[0]
    errors = [{k: p[k] for k in ("code", "details", "message")} for p in problems]
    return error_body("MULTIPLE_OR_MULTI_ERRORS", "multiple errors occurred", {"errors": errors})


# ------------------------------------------------------------------ scripted refusals
def scripted_refusal(spec: dict[str, Any] | None, index: int, count: int) -> dict[str, Any] | None:
    """The error element a ``fail_records`` fault puts at ``index`` of a ``count``-record
    batch, or None if that position is left alone.

    Positions may be negative (``-1`` is the last record) so one spec fits any batch size.
    """
    if spec is None:
        return None
    positions = spec.get("positions", "all")
    if positions != "all":
        wanted = {int(p) % count for p in positions if -count <= int(p) < count}
        if index not in wanted:
            return None
    details = spec.get("details")
    return error_body(
        str(spec.get("code") or "INVALID_DATA"),
        str(spec.get("message") or "the record was refused (scripted fault)"),
        dict(details) if isinstance(details, dict) else {"json_path": f"$.data[{index}]"},
    )


# ------------------------------------------------------------------------- writes
def _full_name(record: dict[str, Any]) -> str:
    parts = [record.get("First_Name"), record.get("Last_Name")]
    return " ".join(p for p in parts if p)


def _create(state: SandboxState, module: str, values: dict[str, Any], user_id: str) -> dict:
    now = state.stamp()
    record: dict[str, Any] = {
        "id": state.new_id(),
        "Owner": user_id,
        "Created_By": user_id,
        "Modified_By": user_id,
        "Created_Time": now,
        "Modified_Time": now,
    }
    for spec in state.fields(module):
        if spec.data_type == "boolean":
            record.setdefault(spec.api_name, False)
    record.update(values)
    record["Full_Name"] = _full_name(record)
    state.data["records"][module][record["id"]] = record
    _reindex(state, module, record)
    return record


def _update(
    state: SandboxState, record: dict[str, Any], values: dict[str, Any], user_id: str
) -> list[str]:
    changed = [name for name, value in values.items() if record.get(name) != value]
    record.update(values)
    record["Full_Name"] = _full_name(record)
    record["Modified_By"] = user_id
    record["Modified_Time"] = state.stamp()
    return changed


def _update_target(
    records: dict[str, dict[str, Any]], item: dict[str, Any], index: int
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The record an update element names by id, or the error Zoho gives when it names none."""
    record_id = item.get("id")
    details = {"api_name": "id", "json_path": _json_path(index, "id")}
    if record_id in (None, ""):
        return None, error_body("MANDATORY_NOT_FOUND", "required field not found", details)
    target = records.get(str(record_id))
    if target is None:
        return None, error_body("INVALID_DATA", "the id given seems to be invalid", details)
    return target, None


def _upsert_match(
    state: SandboxState,
    module: str,
    item: dict[str, Any],
    duplicate_check: list[str] | None,
) -> tuple[dict[str, Any] | None, str | None]:
    """The first existing record sharing a duplicate-check value, in the order Zoho tries them."""
    for api_name in duplicate_check or []:
        value = item.get(api_name)
        if value in (None, "") or not isinstance(value, str | int):
            continue
        found = _find_by_value(state, module, api_name, value)
        if found:
            return found[0], api_name
    return None, None


def _stale_error(
    target: dict[str, Any] | None, if_unmodified_since: str | None
) -> dict[str, Any] | None:
    """Refuse to overwrite a record changed after the caller last read it."""
    if (
        target is not None
        and if_unmodified_since is not None
        and target["Modified_Time"] > if_unmodified_since
    ):
        return error_body(
            "ALREADY_MODIFIED",
            "Record updated time has already passed if-unmodified-since time",
            {"id": target["id"]},
        )
    return None


def _checked_values(
    state: SandboxState,
    module: str,
    item: dict[str, Any],
    index: int,
    target: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Coerced values of one element, or the combined error if Zoho would refuse them.

    Duplicates are only looked for once the element is otherwise valid, as Zoho reports them.
    """
    values, problems = _collect_values(state, module, item, index)
    creating_without = target is None and not values.get("Last_Name")
    emptying = target is not None and "Last_Name" in values and not values["Last_Name"]
    if creating_without or emptying:
        problems.insert(0, _mandatory_problem(index))
    if not problems:
        exclude = target["id"] if target is not None else None
        duplicate = _duplicate_problem(state, module, values, index, exclude)
        if duplicate:
            problems.append(duplicate)
    if problems:
        return values, _combine(problems)
    return values, None


def _insert_one(
    state: SandboxState,
    module: str,
    values: dict[str, Any],
    user_id: str,
    action: str,
    outcome: BatchOutcome,
) -> dict[str, Any]:
    """Create the record and return its success element; upserts also say they inserted."""
    record = _create(state, module, values, user_id)
    outcome.inserted.append(record["id"])
    outcome.affected[record["id"]] = [n for n, v in values.items() if v not in (None, [])]
    element = {
        "code": "SUCCESS",
        "details": {**success_details(state, record), "$approval_state": "approved"},
        "message": "record added",
        "status": "success",
    }
    if action == "upsert":
        element = {"code": "SUCCESS", "duplicate_field": None, "action": "insert", **element}
    return element


def _update_one(
    state: SandboxState,
    module: str,
    target: dict[str, Any],
    values: dict[str, Any],
    user_id: str,
    action: str,
    matched_on: str | None,
    outcome: BatchOutcome,
) -> dict[str, Any]:
    """Update the record and return its success element; upserts also name the matching field."""
    changed = _update(state, target, values, user_id)
    _reindex(state, module, target)
    outcome.updated.append(target["id"])
    outcome.affected[target["id"]] = changed
    element = {
        "code": "SUCCESS",
        "details": success_details(state, target),
        "message": "record updated",
        "status": "success",
    }
    if action == "upsert":
        element = {"code": "SUCCESS", "duplicate_field": matched_on, "action": "update", **element}
    return element


def apply_batch(
    state: SandboxState,
    module: str,
    action: str,
    items: list[Any],
    user_id: str,
    *,
    duplicate_check: list[str] | None = None,
    if_unmodified_since: str | None = None,
    refuse: dict[str, Any] | None = None,
) -> BatchOutcome:
    """Insert, update or upsert ``items`` one by one, in order, reporting each result.

    Records are applied sequentially, so a unique value used twice in one batch fails on
    its second use, as it would in Zoho. ``refuse`` is a ``fail_records`` fault: the
    records at its positions are refused and left untouched.
    """
    outcome = BatchOutcome()
    records = state.data["records"][module]
    for index, item in enumerate(items):
        refusal = scripted_refusal(refuse, index, len(items))
        if refusal is not None:
            outcome.results.append(refusal)
            continue
        if not isinstance(item, dict):
            details = {"json_path": f"$.data[{index}]", "expected_data_type": "jsonobject"}
            outcome.results.append(error_body("INVALID_DATA", "invalid data", details))
            continue
        target: dict[str, Any] | None = None
        matched_on: str | None = None
        if action == "update":
            target, missing = _update_target(records, item, index)
            if missing is not None:
                outcome.results.append(missing)
                continue
        elif action == "upsert":
            target, matched_on = _upsert_match(state, module, item, duplicate_check)
        stale = _stale_error(target, if_unmodified_since)
        if stale is not None:
            outcome.results.append(stale)
            continue
        values, refused = _checked_values(state, module, item, index, target)
        if refused is not None:
            outcome.results.append(refused)
            continue
        if target is None:
            element = _insert_one(state, module, values, user_id, action, outcome)
        else:
            element = _update_one(
                state, module, target, values, user_id, action, matched_on, outcome
            )
        outcome.results.append(element)
    return outcome


def delete_records(
    state: SandboxState,
    module: str,
    ids: list[str],
    user_id: str,
    *,
    permanent: bool = False,
    refuse: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Move records to the recycle bin (or purge them), one result per id (§2.7)."""
    results: list[dict[str, Any]] = []
    deleted: list[str] = []
    records = state.data["records"][module]
    for index, record_id in enumerate(ids):
        refusal = scripted_refusal(refuse, index, len(ids))
        if refusal is not None:
            results.append(refusal)
            continue
        record = records.pop(record_id, None)
        _changed(state, module)
        if record is None:
            results.append(error_body("INVALID_DATA", "record not deleted", {"id": record_id}))
            continue
        entry = {
            "deleted_by": user_id,
            "id": record_id,
            "display_name": record.get("Full_Name") or record.get("Last_Name"),
            "type": "permanent" if permanent else "recycle",
            "created_by": record["Created_By"],
            "deleted_time": state.stamp(),
            "record": record,
        }
        state.data["deleted"][module].append(entry)
        deleted.append(record_id)
        results.append(
            {
                "code": "SUCCESS",
                "details": {"id": record_id},
                "message": "record deleted",
                "status": "success",
            }
        )
    return results, deleted


def render_deleted(state: SandboxState, entry: dict[str, Any]) -> dict[str, Any]:
    """A `/deleted` element; permanent deletions lose who and what (reference §2.8)."""
    permanent = entry["type"] == "permanent"
    return {
        "deleted_by": None if permanent else _user_brief(state, entry["deleted_by"]),
        "id": entry["id"],
        "display_name": None if permanent else entry["display_name"],
        "type": entry["type"],
        "created_by": None if permanent else _user_brief(state, entry["created_by"]),
        "deleted_time": state.show(entry["deleted_time"]),
    }


#: Lead -> Contact field carry-over on conversion (Zoho's default conversion mapping).
_CONVERSION_MAP = {
    "Designation": "Title",
    "Street": "Mailing_Street",
    "City": "Mailing_City",
    "State": "Mailing_State",
    "Zip_Code": "Mailing_Zip",
    "Country": "Mailing_Country",
}

#: What a conversion's ``Deals`` object must hold: "Deal_Name", "Closing_Date", "Pipeline"
#: and "Stage" are the default mandatory keys (convert-lead page, "Deals" input key).
DEAL_MANDATORY = ("Deal_Name", "Closing_Date", "Pipeline", "Stage")


class LeadConversionError(Exception):
    """Zoho's refusal of a conversion: its code, message, details and HTTP status."""

    def __init__(self, code: str, message: str, details: dict[str, Any], status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.status = status


def _brief(record: dict[str, Any] | None, name_key: str) -> dict[str, Any] | None:
    return {"name": record[name_key], "id": record["id"]} if record is not None else None


def _existing_target(state: SandboxState, body: dict[str, Any], key: str) -> dict | None:
    """The existing Account or Contact a conversion names (``{"id": ...}``), if any."""
    named = body.get(key)
    if named is None:
        return None
    named_id = str(named.get("id") if isinstance(named, dict) else named)
    store = state.data["records"]["Contacts"] if key == "Contacts" else state.data["accounts"]
    found = store.get(named_id)
    if found is None:
        path = f"$.data[0].{key}"
        raise LeadConversionError(
            "INVALID_DATA", "invalid data", {"api_name": key, "json_path": path}
        )
    return found


def _new_deal(state: SandboxState, body: dict[str, Any]) -> dict[str, Any] | None:
    deal = body.get("Deals")
    if deal is None:
        return None
    if not isinstance(deal, dict):
        raise LeadConversionError(
            "INVALID_DATA",
            "invalid data",
            {
                "api_name": "Deals",
                "json_path": "$.data[0].Deals",
                "expected_data_type": "jsonobject",
            },
        )
    for key in DEAL_MANDATORY:
        if deal.get(key) in (None, ""):
            raise LeadConversionError(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                {"api_name": key, "json_path": f"$.data[0].Deals.{key}"},
            )
    record = {"id": state.new_id(), **{k: v for k, v in deal.items() if k != "id"}}
    state.data["deals"][record["id"]] = record
    return record


def convert_lead(
    state: SandboxState, lead_id: str, user_id: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Convert a lead as `POST /Leads/{id}/actions/convert` does (convert-lead page): a
    Contact (or the existing one the body names), an Account from the lead's Company (or the
    existing one named; none without a Company), a Deal when the body has ``Deals``. The lead
    stays, marked ``Converted__s`` with lookups to all three, and leaves default listings.

    Returns the answer's ``details``; raises :class:`LeadConversionError` as Zoho refuses.
    """
    body = body or {}
    lead = state.data["records"]["Leads"].get(lead_id)
    if lead is None:
        raise LeadConversionError(
            "INVALID_DATA", "the id given seems to be invalid", {"resource_path_index": 1}
        )
    if is_converted(lead):
        raise LeadConversionError(
            "ID_ALREADY_CONVERTED", "id already converted", {"resource_path_index": 1}
        )
    account = _existing_target(state, body, "Accounts")
    contact = _existing_target(state, body, "Contacts")
    deal = _new_deal(state, body)
    if account is None and lead.get("Company"):
        account = {"id": state.new_id(), "Account_Name": lead["Company"]}
        state.data["accounts"][account["id"]] = account
    if contact is None:
        contact = _create(state, "Contacts", _contact_values(state, lead), user_id)
    if account is not None:
        contact["Account_Name"] = _brief(account, "Account_Name")
    _changed(state, "Leads")
    _changed(state, "Contacts")
    lead["Converted__s"] = True
    lead["Converted_Contact"] = _brief(contact, "Full_Name")
    lead["Converted_Account"] = _brief(account, "Account_Name")
    lead["Converted_Deal"] = _brief(deal, "Deal_Name")
    lead["Converted_Date_Time"] = state.stamp()
    lead["Modified_By"] = user_id
    lead["Modified_Time"] = lead["Converted_Date_Time"]
    return {
        "Contacts": _brief(contact, "Full_Name"),
        "Deals": _brief(deal, "Deal_Name"),
        "Accounts": _brief(account, "Account_Name"),
    }


def _contact_values(state: SandboxState, lead: dict[str, Any]) -> dict[str, Any]:
    """The lead's values a new Contact takes, through the conversion mapping."""
    contact_specs = state.field_map("Contacts")
    values: dict[str, Any] = {}
    for name, value in lead.items():
        target = _CONVERSION_MAP.get(name, name)
        spec = contact_specs.get(target)
        if spec is not None and spec.writable and value not in (None, "") and name != "Owner":
            values[target] = value
    return values


def publish_conversion(state: SandboxState, lead_id: str, details: dict[str, Any]) -> None:
    """Tell notification channels of a conversion: the lead changed, its Contact appeared."""
    if state.notifier is None:
        return
    changed = ["Converted__s", "Converted_Date_Time", "Converted_Contact"]
    state.notifier.publish("Leads", "update", [lead_id], {lead_id: changed})
    state.notifier.publish("Contacts", "insert", [details["Contacts"]["id"]], {})


def restore_from_recycle_bin(
    state: SandboxState, record_id: str
) -> tuple[dict[str, Any], str | None]:
    """Put a record from the recycle bin back in its module: ``(answer element, module)``.

    Zoho v8's ``POST /settings/recycle_bin/{record_ID}/actions/restore``
    (docs/zoho-api-notes.md, "Recycle bin"): the record comes back under its own id with
    its values, and leaves the bin. One only in the bin permanently deleted (purged), or
    never deleted, is ``INVALID_DATA`` on ``details.id``, as for a delete of an unknown id.
    """
    for module, entries in state.data["deleted"].items():
        for position, entry in enumerate(entries):
            if entry["id"] != record_id or entry["type"] != "recycle" or "record" not in entry:
                continue
            del entries[position]
            state.data["records"][module][record_id] = entry["record"]
            _changed(state, module)
            return (
                {
                    "code": "SUCCESS",
                    "details": {"id": record_id},
                    "message": "record restored",
                    "status": "success",
                },
                module,
            )
    return error_body("INVALID_DATA", "the id given seems to be invalid", {"id": record_id}), None
