"""Zoho's Bulk Read and Bulk Write APIs (reference §6), asynchronous like the real ones.

A first sync of a large contact base through REST costs one call per 200 records read and
one per 100 written; the bulk APIs move 200,000 rows per read job and 25,000 per write job
as zipped CSV. What makes them hard for a client is that they are jobs, not answers: a job
is ``ADDED`` when created and only later ``COMPLETED`` (or failed), results are files with
their own formats and limits, and errors come back per CSV row. The sandbox therefore
advances a job one state per status poll, or one state per ``SECONDS_PER_STEP`` of its
clock, so a client that does not poll never sees a result, and a client that polls in a
tight loop still has to go round several times.

Work happens when a job reaches its final state. A write job goes through the same
``apply_batch`` as REST writes, so bulk-written records get ``Modified_Time``, unique checks
and notifications exactly as REST-written ones do. Files and jobs live in memory
(``state.bulk_jobs``, cleared by reset), never in the persisted state file.
"""

from __future__ import annotations

import csv
import io
import secrets
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, g, request

from . import tokens
from .fields import MODULE_IDS, MODULES, SYSTEM_DUPLICATE_CHECK, FieldSpec, store_instant
from .guard import crm_call
from .records import (
    apply_batch,
    is_converted,
    render_value,
    unique_custom_fields,
)
from .responses import json_response, too_many_requests, zoho_error
from .state import SandboxState
from .zoho_time import (
    ZohoTimeRefused,
    format_date,
    format_datetime,
    parse_bulk_csv_date,
    parse_bulk_csv_datetime,
    parse_datetime,
)

#: Zoho's published bulk limits (reference §6.1, §6.2, §4.3).
READ_PAGE_SIZE = 200_000
WRITE_MAX_RECORDS = 25_000
WRITE_MAX_MAPPED_FIELDS = 200
UPLOAD_MAX_BYTES = 25 * 1024 * 1024
DOWNLOADS_PER_MINUTE = 10
PAGE_TOKEN_TTL = timedelta(hours=24)

#: Sandbox-clock seconds a job stays in each state when nobody polls it.
SECONDS_PER_STEP = 5.0
#: Wall-clock seconds of work one request may do on a write job before answering.
WORK_SLICE_SECONDS = 10.0

READ_STATES = ("ADDED", "QUEUED", "IN PROGRESS", "COMPLETED")
WRITE_STATES = ("ADDED", "IN PROGRESS", "COMPLETED")
READ_FAILED = "FAILURE"
WRITE_FAILED = "FAILED"

_COMPARATORS = {
    "equal",
    "not_equal",
    "in",
    "not_in",
    "between",
    "not_between",
    "greater_than",
    "greater_equal",
    "less_than",
    "less_equal",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
}
_OPERATIONS = ("insert", "update", "upsert")


class BulkError(Exception):
    """A request Zoho would refuse; becomes the usual ``{"code","details",...}`` body."""

    def __init__(
        self, code: str, message: str, details: dict[str, Any] | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.status = status

    def response(self) -> Response:
        return zoho_error(self.code, self.message, self.details, self.status)


class JobFailed(Exception):
    """A job that cannot be processed: it ends in FAILURE / FAILED instead of COMPLETED."""


# ----------------------------------------------------------------------------- storage
def _store(state: SandboxState, name: str) -> dict[str, Any]:
    return state.bulk_jobs.setdefault(name, {})


def _downloads(state: SandboxState) -> deque[float]:
    return state.bulk_jobs.setdefault("downloads", deque())


def _user_brief(state: SandboxState, user_id: str) -> dict[str, Any] | None:
    ref = state.user_ref(user_id)
    return {"id": ref["id"], "name": ref["name"]} if ref else None


def _require_json() -> dict[str, Any]:
    if not (request.mimetype or "").lower() == "application/json":
        raise BulkError(
            "MEDIA_TYPE_NOT_SUPPORTED",
            "The Content-Type header must be application/json",
            status=415,
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BulkError(
            "INVALID_DATA", "body is not a valid JSON", {"expected_data_type": "jsonobject"}
        )
    return body


def _module_of(resource: Any, path: str) -> str:
    api_name = resource.get("api_name") if isinstance(resource, dict) else None
    if api_name is None:
        raise BulkError(
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "module", "json_path": path},
        )
    if api_name not in MODULES:
        raise BulkError(
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            {"api_name": str(api_name), "json_path": path},
        )
    return str(api_name)


def _check_module_scope(module: str, operation: str) -> None:
    """Bulk calls need the module's scope as well as the bulk scope (reference §6)."""
    if not tokens.scope_allows(g.sandbox_scopes, ("modules", module.lower()), operation):
        raise BulkError("OAUTH_SCOPE_MISMATCH", "Unauthorized", status=401)


def _advance(state: SandboxState, job: dict[str, Any], polled: bool, process: Callable) -> None:
    """Move a job towards its end: one state per poll, or per SECONDS_PER_STEP of clock.

    ``process`` does the job's work when it is due to complete, and returns False when it
    did only part of it: a large write is worked through over several polls, so no single
    request runs longer than ``WORK_SLICE_SECONDS`` (and times out in the client).
    """
    states = job["states"]
    if job["state"] not in states[:-1]:
        return
    if polled:
        job["polls"] += 1
    elapsed = state.timestamp() - job["created_at"]
    target = min(len(states) - 1, job["polls"] + int(elapsed // SECONDS_PER_STEP))
    while job["step"] < target:
        if job["step"] + 1 == len(states) - 1:
            try:
                finished = process(state, job)
            except JobFailed as failure:
                job["state"] = job["failed_state"]
                job["failure"] = str(failure)
                return
            if not finished:
                return  # still working: the job stays where it is until a later poll
        job["step"] += 1
        job["state"] = states[job["step"]]


# --------------------------------------------------------------------------- bulk read
def _iso_instant(value: Any, path: str) -> str:
    """A criteria DateTime: ISO-8601 with an offset and, as Zoho insists, no milliseconds."""
    try:
        return store_instant(parse_datetime(value))
    except ZohoTimeRefused as refused:
        raise BulkError(
            "INVALID_DATA",
            "invalid data",
            {"json_path": path, "expected_data_type": refused.reason},
        ) from None


def _criteria_value(spec: FieldSpec, value: Any, path: str) -> Any:
    if spec.data_type == "datetime":
        if isinstance(value, list):
            return [_iso_instant(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return _iso_instant(value, path)
    return value


def _compile_group(
    state: SandboxState, module: str, criteria: dict[str, Any], path: str
) -> Callable[[dict[str, Any]], bool]:
    """An and/or of at least two sub-criteria, each compiled with its own json_path."""
    operator = str(criteria.get("group_operator", "")).lower()
    group = criteria["group"]
    if operator not in ("and", "or") or not isinstance(group, list) or len(group) < 2:
        raise BulkError(
            "INVALID_DATA",
            "a group needs group_operator and/or and at least two criteria",
            {"json_path": f"{path}.group_operator"},
        )
    parts = [
        _compile_criteria(state, module, item, f"{path}.group[{i}]") for i, item in enumerate(group)
    ]
    if operator == "and":
        return lambda record: all(part(record) for part in parts)
    return lambda record: any(part(record) for part in parts)


def _criterion_field(
    state: SandboxState, module: str, criteria: dict[str, Any], path: str
) -> FieldSpec | None:
    """The field a criterion compares, given as ``field.api_name`` or ``api_name``.

    ``None`` means the record id, which has no field spec.
    """
    field = criteria.get("field")
    api_name = field.get("api_name") if isinstance(field, dict) else criteria.get("api_name")
    specs = state.field_map(module)
    spec = specs.get(api_name) if isinstance(api_name, str) else None
    if spec is None and api_name != "id":
        raise BulkError(
            "INVALID_DATA",
            "invalid data",
            {"api_name": str(api_name), "json_path": f"{path}.field"},
        )
    return spec


def _criterion_value(
    criteria: dict[str, Any], spec: FieldSpec | None, comparator: str, path: str
) -> Any:
    """The criterion's value in stored form, shaped as its comparator needs."""
    if "value" not in criteria:
        raise BulkError(
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "value", "json_path": path},
        )
    raw = criteria["value"]
    value = _criteria_value(spec, raw, f"{path}.value") if spec is not None else raw
    if comparator in ("between", "not_between", "in", "not_in") and not isinstance(value, list):
        raise BulkError(
            "INVALID_DATA",
            "invalid data",
            {"json_path": f"{path}.value", "expected_data_type": "jsonarray"},
        )
    if comparator in ("between", "not_between") and len(value) != 2:
        raise BulkError("INVALID_DATA", "between needs two values", {"json_path": f"{path}.value"})
    return value


def _comparison(
    name: str, comparator: str, value: Any, folds_case: bool
) -> Callable[[dict[str, Any]], bool]:
    """A predicate applying ``comparator`` to a record's ``name`` value.

    Text compares case-blind, ``${EMPTY}`` stands for no value, and an empty or
    incomparable value matches no ordering comparator, as in Zoho.
    """

    def normal(item: Any) -> Any:
        if item == "${EMPTY}":
            return None
        return item.lower() if folds_case and isinstance(item, str) else item

    def test(record: dict[str, Any]) -> bool:
        have = normal(record.get(name))
        if comparator == "equal":
            return have == normal(value)
        if comparator == "not_equal":
            return have != normal(value)
        if comparator == "in":
            return have in [normal(v) for v in value]
        if comparator == "not_in":
            return have not in [normal(v) for v in value]
        if have is None:
            return False
        if comparator in ("contains", "not_contains", "starts_with", "ends_with"):
            text, part = str(have), str(normal(value))
            found = {
                "contains": part in text,
                "not_contains": part not in text,
                "starts_with": text.startswith(part),
                "ends_with": text.endswith(part),
            }
            return found[comparator]
        try:
            if comparator == "greater_than":
                return have > normal(value)
            if comparator == "greater_equal":
                return have >= normal(value)
            if comparator == "less_than":
                return have < normal(value)
            if comparator == "less_equal":
                return have <= normal(value)
            low, high = normal(value[0]), normal(value[1])
            inside = low <= have <= high
            return inside if comparator == "between" else not inside
        except TypeError:
            return False

    return test


def _compile_criteria(
    state: SandboxState, module: str, criteria: Any, path: str
) -> Callable[[dict[str, Any]], bool]:
    """Turn a criteria tree into a predicate over stored records, refusing what Zoho would."""
    if not isinstance(criteria, dict):
        raise BulkError("INVALID_DATA", "invalid data", {"json_path": path})
    if "group" in criteria:
        return _compile_group(state, module, criteria, path)
    spec = _criterion_field(state, module, criteria, path)
    comparator = criteria.get("comparator")
    if comparator not in _COMPARATORS:
        raise BulkError(
            "INVALID_DATA",
            "invalid data",
            {"api_name": "comparator", "json_path": f"{path}.comparator"},
        )
    value = _criterion_value(criteria, spec, comparator, path)
    name = "id" if spec is None else spec.api_name
    folds_case = spec is not None and spec.data_type not in ("datetime", "date")
    return _comparison(name, comparator, value, folds_case)


def _csv_cell(state: SandboxState, spec: FieldSpec | None, value: Any) -> str:
    """A stored value as the export CSV shows it: ISO-8601 date-times, ids for lookups."""
    shown = render_value(state, spec, value)
    if shown is None:
        return ""
    if isinstance(shown, bool):
        return "true" if shown else "false"
    if isinstance(shown, list):
        return ";".join(str(item) for item in shown)
    if isinstance(shown, dict):
        return str(shown.get("id") or shown.get("name") or "")
    return str(shown)


def _zip_csv(name: str, header: list[str], rows: Iterator[list[str]]) -> bytes:
    """One CSV inside one zip, written row by row so the CSV text never exists whole."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(name, "w") as raw,
    ):
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        writer.writerows(rows)
        text.flush()
        text.detach()
    return buffer.getvalue()


def _process_read(state: SandboxState, job: dict[str, Any]) -> bool:
    """Export the matching records at completion time, as Zoho does when the job runs."""
    if job.get("fail"):
        raise JobFailed("the export could not be completed")
    module = job["module"]
    specs = state.field_map(module)
    names = job["fields"] or [name for name in specs if name != "id"]
    predicate = job["predicate"]
    matching = sorted(
        (
            record
            for record in state.data["records"][module].values()
            if not is_converted(record) and predicate(record)
        ),
        key=lambda record: record["id"],
    )
    start = (job["page"] - 1) * READ_PAGE_SIZE
    chunk = matching[start : start + READ_PAGE_SIZE]
    more = len(matching) > start + len(chunk) and bool(chunk)
    header = ["id", *names]
    rows = (
        [record["id"], *(_csv_cell(state, specs.get(n), record.get(n)) for n in names)]
        for record in chunk
    )
    job["zip"] = _zip_csv(f"{job['id']}.csv", header, rows)
    next_token = None
    if more:
        next_token = secrets.token_hex(24)
        _store(state, "read_tokens")[next_token] = {
            "query_key": job["query_key"],
            "page": job["page"] + 1,
            "expires_at": state.timestamp() + PAGE_TOKEN_TTL.total_seconds(),
            "user_id": job["user_id"],
        }
    job["result"] = {
        "page": job["page"],
        "per_page": READ_PAGE_SIZE,
        "count": len(chunk),
        "download_url": f"/crm/bulk/v8/read/{job['id']}/result",
        "more_records": more,
        "next_page_token": next_token,
    }
    return True


def _normal_query(state: SandboxState, job: dict[str, Any]) -> dict[str, Any]:
    """The job's query as Zoho echoes it back: the module named by api_name and id, the
    page the job reads, and the fields and criteria only when the request had them
    (bulk-read job-details samples), whatever shape the request gave them in."""
    module = job["module"]
    query: dict[str, Any] = {"module": {"id": MODULE_IDS[module], "api_name": module}}
    if job["fields"]:
        query["fields"] = list(job["fields"])
    criteria = job["query"].get("criteria")
    if criteria is not None:
        query["criteria"] = _normal_criteria(state, module, criteria)
    query["page"] = job["page"]
    return query


def _normal_criteria(state: SandboxState, module: str, criteria: Any) -> Any:
    """Criteria with each field named by api_name and id, groups kept as groups."""
    if not isinstance(criteria, dict):
        return criteria
    if "group" in criteria:
        return {
            "group_operator": str(criteria.get("group_operator", "and")).lower(),
            "group": [_normal_criteria(state, module, part) for part in criteria["group"]],
        }
    field = criteria.get("field")
    name = field.get("api_name") if isinstance(field, dict) else field
    spec = state.field_map(module).get(str(name))
    shown = {"api_name": name, "id": spec.field_id if spec is not None else None}
    return {
        "field": shown,
        "comparator": criteria.get("comparator"),
        "value": criteria.get("value"),
    }


def _read_job_json(state: SandboxState, job: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": job["id"],
        "operation": "read",
        "state": job["state"],
        "query": _normal_query(state, job),
        "created_by": _user_brief(state, job["user_id"]),
        "created_time": state.show(job["created_stamp"]),
        "file_type": "csv",
    }
    if job["state"] == "COMPLETED":
        shown["result"] = job["result"]
    return shown


def _export_fields(state: SandboxState, module: str, query: dict[str, Any]) -> list[str]:
    """The fields to export, each known to the module, without ``id`` (always the first column)."""
    specs = state.field_map(module)
    fields = query.get("fields") or []
    if not isinstance(fields, list):
        raise BulkError(
            "INVALID_DATA",
            "invalid data",
            {"api_name": "fields", "expected_data_type": "jsonarray"},
        )
    for index, name in enumerate(fields):
        if name != "id" and name not in specs:
            raise BulkError(
                "INVALID_DATA",
                "invalid data",
                {"api_name": str(name), "json_path": f"$.query.fields[{index}]"},
            )
    return [name for name in dict.fromkeys(fields) if name != "id"]


def _export_page(state: SandboxState, query: dict[str, Any], query_key: str) -> int:
    """The page to export: from ``page``, or from a page token bound to this query and user."""
    if query.get("page_token") is not None:
        if "page" in query:
            raise BulkError(
                "INVALID_DATA", "send either page or page_token, not both", {"api_name": "page"}
            )
        saved = _store(state, "read_tokens").get(str(query["page_token"]))
        if saved is None or saved["expires_at"] < state.timestamp():
            raise BulkError(
                "INVALID_DATA", "the page_token is invalid or expired", {"api_name": "page_token"}
            )
        if saved["query_key"] != query_key or saved["user_id"] != g.sandbox_user_id:
            raise BulkError(
                "TOKEN_BOUND_DATA_MISMATCH",
                "the page_token belongs to another query or user",
                {"api_name": "page_token"},
            )
        return saved["page"]
    if "page" not in query:
        return 1
    page = query["page"]
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise BulkError(
            "INVALID_DATA",
            "invalid data",
            {"api_name": "page", "expected_data_type": "integer"},
        )
    return page


def _create_read_job(state: SandboxState, body: dict[str, Any]) -> dict[str, Any]:
    query = body.get("query")
    if not isinstance(query, dict):
        raise BulkError(
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "query"},
        )
    module = _module_of(query.get("module"), "$.query.module")
    _check_module_scope(module, "READ")
    file_type = body.get("file_type", "csv")
    if file_type != "csv":
        raise BulkError(
            "INVALID_DATA",
            "only csv exports are supported for this module (ics is for Events)",
            {"api_name": "file_type"},
        )
    names = _export_fields(state, module, query)
    criteria = query.get("criteria")
    predicate = (
        _compile_criteria(state, module, criteria, "$.query.criteria")
        if criteria is not None
        else (lambda record: True)
    )
    query_key = repr((module, names, criteria))
    page = _export_page(state, query, query_key)
    job_id = state.new_id()
    job = {
        "id": job_id,
        "kind": "read",
        "module": module,
        "fields": names,
        "predicate": predicate,
        "query": query,
        "query_key": query_key,
        "page": page,
        "user_id": g.sandbox_user_id,
        "created_at": state.timestamp(),
        "created_stamp": state.stamp(),
        "states": READ_STATES,
        "failed_state": READ_FAILED,
        "state": READ_STATES[0],
        "step": 0,
        "polls": 0,
        "callback": body.get("callback"),
    }
    _store(state, "read")[job_id] = job
    return job


# -------------------------------------------------------------------------- bulk write
def _read_upload(state: SandboxState) -> dict[str, Any]:
    if request.headers.get("feature") is None:
        raise BulkError(
            "REQUIRED_PARAM_MISSING",
            "the feature header is missing",
            {"param_name": "feature", "expected_value": "bulk-write"},
        )
    if request.headers.get("feature") != "bulk-write":
        raise BulkError("INVALID_DATA", "invalid data", {"header_name": "feature"})
    org = request.headers.get("X-CRM-ORG")
    if org is None:
        raise BulkError(
            "REQUIRED_PARAM_MISSING",
            "the X-CRM-ORG header is missing (the org's zgid from GET /org)",
            {"param_name": "X-CRM-ORG"},
        )
    if org != state.data["org"]["zgid"]:
        raise BulkError("INVALID_DATA", "invalid data", {"header_name": "X-CRM-ORG"})
    upload = request.files.get("file")
    if upload is None:
        raise BulkError(
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "file"},
        )
    payload = upload.read(UPLOAD_MAX_BYTES + 1)
    if len(payload) > UPLOAD_MAX_BYTES:
        raise BulkError(
            "FILE_TOO_LARGE",
            "the file is larger than 25 MB; split it into several files",
            {"limit": UPLOAD_MAX_BYTES},
            status=413,
        )
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1 or not members[0].filename.lower().endswith(".csv"):
                raise BulkError(
                    "INVALID_FILE_FORMAT",
                    "the zip must hold exactly one CSV file",
                    {"files": [m.filename for m in members]},
                )
            text = archive.read(members[0]).decode("utf-8-sig")
            name = members[0].filename
    except (zipfile.BadZipFile, UnicodeDecodeError):
        raise BulkError(
            "INVALID_FILE_FORMAT", "the file is not a zip holding a UTF-8 CSV file"
        ) from None
    file_id = state.new_id()
    entry = {"id": file_id, "name": name, "text": text, "created_stamp": state.stamp()}
    _store(state, "files")[file_id] = entry
    return entry


def _find_by_fields(state: SandboxState, module: str) -> list[str]:
    return ["id", *SYSTEM_DUPLICATE_CHECK[module], *unique_custom_fields(state, module)]


def _field_mappings(
    state: SandboxState, module: str, resource: dict[str, Any], header: list[str]
) -> list[dict[str, Any]]:
    specs = state.field_map(module)
    given = resource.get("field_mappings")
    if given is None:
        given = [{"api_name": name, "index": index} for index, name in enumerate(header)]
    if not isinstance(given, list) or not given:
        raise BulkError(
            "INVALID_DATA",
            "invalid data",
            {"api_name": "field_mappings", "expected_data_type": "jsonarray"},
        )
    if len(given) > WRITE_MAX_MAPPED_FIELDS:
        raise BulkError(
            "HEADER_LIMIT_EXCEEDED",
            f"at most {WRITE_MAX_MAPPED_FIELDS} fields can be mapped",
            {"limit": WRITE_MAX_MAPPED_FIELDS},
        )
    mappings = []
    for position, mapping in enumerate(given):
        path = f"$.resource[0].field_mappings[{position}]"
        name = mapping.get("api_name") if isinstance(mapping, dict) else None
        spec = specs.get(name) if isinstance(name, str) else None
        if name != "id" and (spec is None or not spec.writable):
            raise BulkError(
                "INVALID_DATA", "invalid data", {"api_name": str(name), "json_path": path}
            )
        index = mapping.get("index")
        default = mapping.get("default_value")
        if index is None and default is None:
            raise BulkError(
                "REQUIRED_PARAM_MISSING",
                "a field mapping needs an index or a default_value",
                {"param_name": "index", "json_path": path},
            )
        if index is not None and (
            isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(header)
        ):
            raise BulkError(
                "INVALID_DATA",
                "the index is not a column of the uploaded file",
                {"api_name": "index", "json_path": path},
            )
        mappings.append(
            {
                "api_name": name,
                "index": index,
                "format": mapping.get("format"),
                "default": default.get("value") if isinstance(default, dict) else None,
            }
        )
    return mappings


def _create_write_job(state: SandboxState, body: dict[str, Any]) -> dict[str, Any]:
    operation = body.get("operation")
    if operation not in _OPERATIONS:
        raise BulkError(
            "INVALID_DATA",
            "operation must be insert, update or upsert",
            {"api_name": "operation"},
        )
    resources = body.get("resource")
    if not isinstance(resources, list) or len(resources) != 1 or not isinstance(resources[0], dict):
        raise BulkError(
            "INVALID_DATA",
            "resource must be a list with one data resource",
            {"api_name": "resource", "expected_data_type": "jsonarray"},
        )
    resource = resources[0]
    if resource.get("type", "data") != "data":
        raise BulkError("INVALID_DATA", "invalid data", {"api_name": "type"})
    module = _module_of(resource.get("module"), "$.resource[0].module")
    _check_module_scope(module, "CREATE" if operation == "insert" else "UPDATE")
    upload = _store(state, "files").get(str(resource.get("file_id")))
    if upload is None:
        raise BulkError(
            "INVALID_DATA", "the file_id given seems to be invalid", {"api_name": "file_id"}
        )
    find_by = resource.get("find_by")
    if find_by is None and operation != "insert":
        raise BulkError(
            "MANDATORY_NOT_FOUND",
            "find_by is mandatory for update and upsert",
            {"api_name": "find_by"},
        )
    if find_by is not None and find_by not in _find_by_fields(state, module):
        raise BulkError(
            "INVALID_DATA",
            "find_by must be id or a unique field",
            {"api_name": "find_by", "allowed": _find_by_fields(state, module)},
        )
    rows = list(csv.reader(io.StringIO(upload["text"])))
    if not rows:
        raise BulkError("INVALID_FILE_FORMAT", "the CSV file is empty")
    header, data_rows = rows[0], rows[1:]
    if len(data_rows) > WRITE_MAX_RECORDS:
        raise BulkError(
            "LIMIT_EXCEEDED",
            f"a bulk write job takes at most {WRITE_MAX_RECORDS} records",
            {"limit": WRITE_MAX_RECORDS},
        )
    mappings = _field_mappings(state, module, resource, header)
    mapped = {m["api_name"] for m in mappings}
    if find_by is not None and find_by not in mapped:
        raise BulkError("INVALID_DATA", "the find_by field must be mapped", {"api_name": "find_by"})
    job_id = state.new_id()
    job = {
        "id": job_id,
        "kind": "write",
        "operation": operation,
        "module": module,
        "find_by": find_by,
        "ignore_empty": bool(body.get("ignore_empty", False)),
        "mappings": mappings,
        "header": header,
        "rows": data_rows,
        "file_name": upload["name"],
        "file_id": upload["id"],
        "user_id": g.sandbox_user_id,
        "created_at": state.timestamp(),
        "created_stamp": state.stamp(),
        "states": WRITE_STATES,
        "failed_state": WRITE_FAILED,
        "state": WRITE_STATES[0],
        "step": 0,
        "polls": 0,
        "callback": body.get("callback"),
        "character_encoding": body.get("character_encoding", "UTF-8"),
    }
    _store(state, "write")[job_id] = job
    return job


def _cell_to_json(state: SandboxState, spec: FieldSpec, text: str, fmt: Any) -> Any:
    """A CSV cell in the JSON form REST writes take, so one validator serves both paths.

    Dates default to ``MM/dd/yyyy`` and date-times to ``MM/dd/yyyy HH:mm:ss`` in the org's
    zone (reference §6.2); a mapping ``format`` containing ``yyyy-MM-dd`` means ISO-8601.
    Anything unparseable is passed on unchanged so the validator reports INVALID_DATA.
    """
    kind = spec.data_type
    iso = isinstance(fmt, str) and "yyyy-MM-dd" in fmt
    if kind == "boolean":
        lowered = text.strip().lower()
        return {"true": True, "false": False}.get(lowered, text)
    if kind == "multiselectpicklist":
        return [part for part in text.split(";") if part]
    if kind in ("ownerlookup", "lookup"):
        return {"id": text}
    if kind == "date" and not iso:
        try:
            return format_date(parse_bulk_csv_date(text))
        except ZohoTimeRefused:
            return text
    if kind == "datetime" and not iso:
        try:
            return format_datetime(parse_bulk_csv_datetime(text, state.zone), state.zone)
        except ZohoTimeRefused:
            return text
    return text


def _row_item(state: SandboxState, job: dict[str, Any], row: list[str]) -> dict[str, Any]:
    specs = state.field_map(job["module"])
    item: dict[str, Any] = {}
    for mapping in job["mappings"]:
        index = mapping["index"]
        text = row[index] if index is not None and index < len(row) else ""
        if text == "" and mapping["default"] is not None:
            text = str(mapping["default"])
        if text == "" and job["ignore_empty"]:
            continue
        name = mapping["api_name"]
        if name == "id":
            item["id"] = text
            continue
        item[name] = _cell_to_json(state, specs[name], text, mapping["format"]) if text else None
    return item


def _error_text(result: dict[str, Any]) -> str:
    """Zoho's ERRORS column: ``CODE-field``, several joined with ``:`` (reference §6.2)."""
    problems = result.get("details", {}).get("errors") or [result]
    parts = []
    for problem in problems:
        details = problem.get("details") or {}
        field = details.get("api_name")
        parts.append(f"{problem['code']}-{field}" if field else str(problem["code"]))
    return ":".join(parts)


def _comparable(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _find_by_index(
    records: dict[str, dict[str, Any]], find_by: str | None
) -> dict[Any, dict[str, Any]]:
    """Records by their find_by value, built once per job: matching 25,000 rows by scanning
    every record per row would make a large job quadratic."""
    if find_by is None or find_by == "id":
        return {}
    index: dict[Any, dict[str, Any]] = {}
    for record in sorted(records.values(), key=lambda r: r["id"]):
        value = record.get(find_by)
        if value not in (None, ""):
            index.setdefault(_comparable(value), record)
    return index


def _process_write(state: SandboxState, job: dict[str, Any]) -> bool:
    """Apply the next rows through the REST write rules for up to WORK_SLICE_SECONDS;
    once every row is done, build the result file. Returns whether the job is done."""
    if job.get("fail"):
        raise JobFailed("the import could not be completed")
    module = job["module"]
    find_by = job["find_by"]
    records = state.data["records"][module]
    index = _find_by_index(records, find_by)
    outcomes: list[tuple[str, str, str]] = job.setdefault("outcomes", [])
    inserted: list[str] = []
    updated: list[str] = []
    affected: dict[str, list[str]] = {}
    deadline = time.monotonic() + WORK_SLICE_SECONDS
    rows = job["rows"]
    started = len(outcomes)
    while len(outcomes) < len(rows) and (len(outcomes) == started or time.monotonic() < deadline):
        row = rows[len(outcomes)]
        item = _row_item(state, job, row)
        key = item.get(find_by) if find_by else None
        target: dict[str, Any] | None = None
        if find_by == "id":
            target = records.get(str(key)) if key else None
        elif find_by and key not in (None, ""):
            target = index.get(_comparable(key))
        if job["operation"] == "insert" and target is not None:
            outcomes.append((target["id"], "skipped", f"DUPLICATE_DATA-{find_by}"))
            continue
        if job["operation"] == "update" and target is None:
            outcomes.append(("", "skipped", f"RESOURCE_NOT_FOUND-{find_by}"))
            continue
        item.pop("id", None)
        if target is None:
            outcome = apply_batch(state, module, "insert", [item], job["user_id"])
        else:
            outcome = apply_batch(
                state, module, "update", [{**item, "id": target["id"]}], job["user_id"]
            )
        [result] = outcome.results
        if result["status"] != "success":
            outcomes.append(("", "skipped", _error_text(result)))
            continue
        record_id = result["details"]["id"]
        if find_by and find_by != "id":
            written = records[record_id].get(find_by)
            if written not in (None, ""):
                index.setdefault(_comparable(written), records[record_id])
        if target is None:
            inserted.append(record_id)
            outcomes.append((record_id, "added", ""))
        else:
            updated.append(record_id)
            affected.update(outcome.affected)
            outcomes.append((record_id, "updated", ""))
    if state.notifier is not None:
        if inserted:
            state.notifier.publish(module, "insert", inserted, {})
        if updated:
            state.notifier.publish(module, "update", updated, affected)
    state.save()
    if len(outcomes) < len(rows):
        return False
    first_three = [m for m in job["mappings"] if m["index"] is not None][:3]
    header = [m["api_name"] for m in first_three] + ["RECORD_ID", "STATUS", "ERRORS"]
    lines = (
        [row[m["index"]] if m["index"] < len(row) else "" for m in first_three] + list(result)
        for row, result in zip(rows, outcomes, strict=True)
    )
    job["zip"] = _zip_csv(f"{module}-{job['id']}.csv", header, lines)
    job["counts"] = {
        "added_count": sum(1 for o in outcomes if o[1] == "added"),
        "updated_count": sum(1 for o in outcomes if o[1] == "updated"),
        "skipped_count": sum(1 for o in outcomes if o[1] == "skipped"),
        "total_count": len(outcomes),
    }
    return True


_RESOURCE_CODES = {"COMPLETED": "SUCCESS", "FAILED": "FAILED", "SKIPPED": "SKIPPED"}


def _write_job_json(state: SandboxState, job: dict[str, Any], root: str) -> dict[str, Any]:
    status = job["state"]
    file_part: dict[str, Any] = {"status": status, "name": job["file_name"]}
    if status == "COMPLETED":
        file_part.update(job["counts"])
    shown: dict[str, Any] = {
        "status": status,
        "character_encoding": job["character_encoding"],
        "resource": [
            {
                "status": status,
                "type": "data",
                # The resource's outcome code, as job details show it: ADDED while the file
                # waits or runs, SUCCESS once done (bulk-write job-details samples).
                "code": _RESOURCE_CODES.get(status, "ADDED"),
                "module": {"api_name": job["module"], "id": MODULE_IDS[job["module"]]},
                "field_mappings": [
                    {
                        "api_name": m["api_name"],
                        "index": m["index"],
                        "format": m["format"],
                        "find_by": None,
                        "default_value": {"value": m["default"]} if m["default"] else None,
                    }
                    for m in job["mappings"]
                ],
                "file": file_part,
                "find_by": job["find_by"],
            }
        ],
        "id": job["id"],
        "callback": job["callback"],
        "created_by": _user_brief(state, job["user_id"]),
        "operation": job["operation"],
        "created_time": state.show(job["created_stamp"]),
    }
    if status == "COMPLETED":
        shown["result"] = {"download_url": f"{root}/crm/bulk/v8/write/{job['id']}/result"}
    return shown


# ------------------------------------------------------------------------------- views
def _zip_response(payload: bytes, name: str) -> Response:
    return Response(
        payload,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _result_zip(state: SandboxState, job: dict[str, Any], process: Callable) -> bytes:
    """A finished job's result file; asking before the job is done is Zoho's error."""
    _advance(state, job, False, process)
    if job["state"] != "COMPLETED":
        raise BulkError(
            "INVALID_REQUEST",
            f"the job is {job['state']}; download its result once it is COMPLETED",
            {"state": job["state"]},
        )
    return job["zip"]


def _job_or_error(state: SandboxState, kind: str, job_id: str) -> dict[str, Any]:
    job = _store(state, kind).get(job_id)
    if job is None:
        raise BulkError(
            "INVALID_URL_PATTERN" if not job_id.isdigit() else "RESOURCE_NOT_FOUND",
            "no bulk job has the given id",
            {"resource_path_index": 0, "id": job_id},
            status=404,
        )
    return job


def bulk_blueprint(state: SandboxState) -> Blueprint:
    """`/crm/bulk/v8/read|write` and the bulk-write upload at `/crm/v8/upload`."""
    bp = Blueprint("sandbox_bulk", __name__)

    def answer(view: Callable[..., Response]) -> Callable[..., Response]:
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                return view(*args, **kwargs)
            except BulkError as error:
                return error.response()

        wrapper.__name__ = view.__name__
        return wrapper

    @bp.post("/crm/bulk/v8/read")
    @crm_call(state, ("bulk",), "READ")
    @answer
    def create_read() -> Response:
        body = _require_json()
        with state.lock:
            job = _create_read_job(state, body)
            details = {
                "id": job["id"],
                "operation": "read",
                "state": job["state"],
                "created_by": _user_brief(state, job["user_id"]),
                "created_time": state.show(job["created_stamp"]),
            }
        element = {
            "status": "success",
            "code": "ADDED_SUCCESSFULLY",
            "message": "Added successfully.",
            "details": details,
        }
        return json_response({"data": [element], "info": {}}, 201)

    @bp.get("/crm/bulk/v8/read/<job_id>")
    @crm_call(state, ("bulk",), "READ")
    @answer
    def read_status(job_id: str) -> Response:
        with state.lock:
            job = _job_or_error(state, "read", job_id)
            _advance(state, job, True, _process_read)
            return json_response({"data": [_read_job_json(state, job)]})

    @bp.get("/crm/bulk/v8/read/<job_id>/result")
    @crm_call(state, ("bulk",), "READ")
    @answer
    def read_result(job_id: str) -> Response:
        with state.lock:
            job = _job_or_error(state, "read", job_id)
            recent = _downloads(state)
            now = state.timestamp()
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= DOWNLOADS_PER_MINUTE:
                return too_many_requests()
            recent.append(now)
            payload = _result_zip(state, job, _process_read)
        return _zip_response(payload, f"{job_id}.zip")

    @bp.post("/crm/v8/upload")
    @crm_call(state, ("files",), "CREATE", service="ZohoFiles")
    @answer
    def upload() -> Response:
        with state.lock:
            entry = _read_upload(state)
        return json_response(
            {
                "status": "success",
                "code": "FILE_UPLOAD_SUCCESS",
                "message": "file uploaded.",
                "details": {
                    "file_id": entry["id"],
                    "created_time": state.show(entry["created_stamp"]),
                },
            }
        )

    @bp.post("/crm/bulk/v8/write")
    @crm_call(state, ("bulk",), "CREATE")
    @answer
    def create_write() -> Response:
        body = _require_json()
        with state.lock:
            job = _create_write_job(state, body)
        return json_response(
            {
                "status": "success",
                "code": "SUCCESS",
                "message": "success",
                "details": {"id": job["id"], "created_by": _user_brief(state, job["user_id"])},
            },
            201,
        )

    @bp.get("/crm/bulk/v8/write/<job_id>")
    @crm_call(state, ("bulk",), "CREATE")
    @answer
    def write_status(job_id: str) -> Response:
        root = request.url_root.rstrip("/")
        with state.lock:
            job = _job_or_error(state, "write", job_id)
            _advance(state, job, True, _process_write)
            return json_response(_write_job_json(state, job, root))

    @bp.get("/crm/bulk/v8/write/<job_id>/result")
    @crm_call(state, ("bulk",), "CREATE")
    @answer
    def write_result(job_id: str) -> Response:
        with state.lock:
            job = _job_or_error(state, "write", job_id)
            payload = _result_zip(state, job, _process_write)
        return _zip_response(payload, f"{job_id}.zip")

    return bp


__all__ = ["READ_PAGE_SIZE", "WRITE_MAX_RECORDS", "bulk_blueprint"]
