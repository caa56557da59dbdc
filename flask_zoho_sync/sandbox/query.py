"""Listing records the way `GET /{module}` does, pagination walls included.

Connectors have broken on exactly these rules (reference §2.1, §10): ``fields`` is
mandatory, ``page`` stops at record 2,000, ``page_token`` is bound to the other parameters
and expires after 24 hours, empty results are bodiless 204/304. The sandbox enforces each
so a client that survives it survives Zoho. Page tokens are keyset cursors (last sort value
and id), so records created while paging neither repeat nor vanish from the walk.
"""

from __future__ import annotations

import bisect
import secrets
import weakref
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .fields import store_instant
from .records import is_converted, render_deleted, render_record, version
from .state import SandboxState
from .zoho_time import ZohoTimeRefused, parse_datetime

DISCRETE_LIMIT = 2000
MAX_FIELDS = 50
MAX_PER_PAGE = 200
MAX_IDS = 100
SORTABLE = ("id", "Created_Time", "Modified_Time")
PAGE_TOKEN_TTL = timedelta(hours=24)


@dataclass
class QueryError(Exception):
    """A request-level error: becomes ``{"code","details","message","status"}``."""

    code: str
    message: str
    details: dict[str, Any]
    status: int = 400


@dataclass
class ListResult:
    """Either a body to send (200) or an empty status (204/304)."""

    status: int
    body: dict[str, Any] | None = None


def parse_header_instant(value: str | None, header: str) -> str | None:
    """Read an If-(Un)Modified-Since header (ISO 8601 with offset, §8) to the stored form."""
    if value is None or value.strip() == "":
        return None
    try:
        return store_instant(parse_datetime(value.strip()))  # HTTP drops the padding
    except ZohoTimeRefused:
        raise QueryError(
            "INVALID_DATA",
            "invalid data",
            {"header_name": header, "expected_data_type": "datetime"},
        ) from None


def _int_param(args: dict[str, str], name: str, default: int, maximum: int | None) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError("INVALID_DATA", "invalid data", {"param_name": name}) from None
    if value < 1 or (maximum is not None and value > maximum):
        details: dict[str, Any] = {"param_name": name}
        if maximum is not None:
            details["maximum_value"] = maximum
        raise QueryError("INVALID_DATA", "invalid data", details)
    return value


def _split(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _sort_key(sort_by: str):
    return lambda record: (record.get(sort_by) or "", record["id"])


#: Per sandbox, the last listing's matching records in ascending order with their sort
#: keys, reused while the records are unchanged (``records.version``). Filtering and
#: sorting every record for every page made paging through 100,000 records quadratic.
_LISTINGS: weakref.WeakKeyDictionary[SandboxState, tuple[Any, ...]] = weakref.WeakKeyDictionary()


def _sorted(
    state: SandboxState,
    module: str,
    ids: list[str],
    sort_by: str,
    converted: str,
    if_modified_since: str | None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    records = state.data["records"][module]
    key = (module, tuple(ids), sort_by, converted, if_modified_since, version(state, module))
    cached = _LISTINGS.get(state)
    if cached is not None and cached[0] == key and cached[1] is records:
        return cached[2], cached[3]
    wanted = set(ids)
    candidates = []
    for record in records.values():
        if wanted and record["id"] not in wanted:
            continue
        flag = is_converted(record)
        if (converted == "false" and flag) or (converted == "true" and not flag):
            continue
        if if_modified_since is not None and record["Modified_Time"] < if_modified_since:
            continue
        candidates.append(record)
    sort_key = _sort_key(sort_by)
    candidates.sort(key=sort_key)
    keys = [sort_key(record) for record in candidates]
    _LISTINGS[state] = (key, records, candidates, keys)
    return candidates, keys


@dataclass(frozen=True)
class _ListParams:
    """The checked query parameters of one listing, and the binding a page token keeps."""

    ids: list[str]
    fields: list[str]
    per_page: int
    sort_by: str
    sort_order: str
    converted: str
    binding: dict[str, Any]


def _list_params(module: str, args: dict[str, str], if_modified_since: str | None) -> _ListParams:
    """Check the parameters in the order Zoho reports them, so the first error matches."""
    ids = _split(args.get("ids"))
    if len(ids) > MAX_IDS:
        raise QueryError(
            "LIMIT_EXCEEDED",
            "the number of ids exceeds the limit",
            {"limit": MAX_IDS, "param_name": "ids"},
        )
    fields = _split(args.get("fields"))
    if not fields and not ids:
        raise QueryError(
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "fields"},
        )
    if len(fields) > MAX_FIELDS:
        raise QueryError(
            "LIMIT_EXCEEDED", "fields limit exceeded", {"limit": MAX_FIELDS, "param_name": "fields"}
        )
    if args.get("page") and args.get("page_token"):
        raise QueryError(
            "AMBIGUITY_DURING_PROCESSING",
            "page and page_token cannot be given together",
            {"ambiguity_due_to": ["page", "page_token"]},
        )
    per_page = _int_param(args, "per_page", MAX_PER_PAGE, MAX_PER_PAGE)
    sort_by = args.get("sort_by") or "id"
    if sort_by not in SORTABLE:
        raise QueryError(
            "INVALID_DATA",
            "invalid data",
            {"param_name": "sort_by", "supported_values": list(SORTABLE)},
        )
    sort_order = args.get("sort_order") or "desc"
    if sort_order not in ("asc", "desc"):
        raise QueryError(
            "INVALID_DATA",
            "invalid data",
            {"param_name": "sort_order", "supported_values": ["asc", "desc"]},
        )
    converted = (args.get("converted") or "false").lower()
    if converted not in ("false", "true", "both"):
        raise QueryError("INVALID_DATA", "invalid data", {"param_name": "converted"})
    binding = {
        "module": module,
        "fields": ",".join(fields),
        "ids": ",".join(ids),
        "sort_by": sort_by,
        "sort_order": sort_order,
        "converted": converted,
        "If-Modified-Since": if_modified_since,
    }
    return _ListParams(ids, fields, per_page, sort_by, sort_order, converted, binding)


def _resumed_position(
    state: SandboxState, token: str, params: _ListParams, user_id: str, now: float
) -> tuple[int, int]:
    """Records already served and the page number for a page token, once it is proven valid.

    A token is only good for the user it was issued to, before it expires, with the same
    parameters, and up to the org's page-token record limit.
    """
    saved = state.page_tokens.get(token)
    if saved is None or saved["user_id"] != user_id:
        raise QueryError("INVALID_DATA", "invalid data", {"param_name": "page_token"})
    if now >= saved["expires_at"]:
        raise QueryError(
            "EXPIRED_VALUE", "the given page_token has expired", {"param_name": "page_token"}
        )
    for key, value in params.binding.items():
        if saved["binding"][key] != value:
            raise QueryError(
                "TOKEN_BOUND_DATA_MISMATCH",
                "the parameters do not match the ones the page_token was issued for",
                {"param_name": key},
            )
    served = saved["served"]
    if served >= state.page_token_limit:
        raise QueryError(
            "PAGINATION_LIMIT_EXCEEDED",
            f"You can only get the first {state.page_token_limit} records",
            {"limit": state.page_token_limit},
        )
    return served, served // params.per_page + 1


def _discrete_position(args: dict[str, str], per_page: int) -> tuple[int, int]:
    """Records before the requested page and its number; ``page`` stops at record 2,000."""
    page = _int_param(args, "page", 1, None)
    served = (page - 1) * per_page
    if served >= DISCRETE_LIMIT:
        raise QueryError(
            "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
            "You can only get the first 2000 records without using page_token param",
            {"limit": DISCRETE_LIMIT},
        )
    return served, page


def _page_window(
    state: SandboxState,
    token: str | None,
    keys: list[tuple[str, str]],
    total: int,
    served: int,
    per_page: int,
    sort_order: str,
) -> tuple[int, int, int]:
    """Slice bounds in the ascending order for this page, and how many records remain after it.

    With a token the page starts at its keyset cursor, so records created meanwhile do not
    shift it; without one it starts at an offset.
    """
    if token:
        cursor = tuple(state.page_tokens[token]["cursor"])
        take = min(per_page, state.page_token_limit - served)
        if sort_order == "desc":
            end = bisect.bisect_left(keys, cursor)  # everything before the cursor
            start = max(0, end - take)
            return start, end, start
        start = bisect.bisect_right(keys, cursor)  # everything after the cursor
        end = min(total, start + take)
        return start, end, total - end
    take = min(per_page, DISCRETE_LIMIT - served)
    if sort_order == "desc":
        end = max(0, total - served)
        start = max(0, end - take)
        return start, end, start
    start = min(total, served)
    end = min(total, start + take)
    return start, end, total - end


def _issue_page_token(
    state: SandboxState,
    params: _ListParams,
    last: dict[str, Any],
    served: int,
    user_id: str,
    now: float,
) -> tuple[str, str | None]:
    """Save a cursor after ``last`` and return its token and the expiry shown to the client."""
    next_token = secrets.token_hex(16)
    ttl = state.faults.page_token_ttl
    lifetime = PAGE_TOKEN_TTL if ttl is None else timedelta(seconds=ttl)
    state.page_tokens[next_token] = {
        "binding": params.binding,
        "cursor": list(_sort_key(params.sort_by)(last)),
        "served": served,
        "expires_at": now + lifetime.total_seconds(),
        "user_id": user_id,
    }
    return next_token, state.show(store_instant(state.now() + lifetime))


def list_records(
    state: SandboxState,
    module: str,
    args: dict[str, str],
    if_modified_since: str | None,
    user_id: str,
) -> ListResult:
    """Answer `GET /crm/v8/{module}`; raises ``QueryError`` for request-level errors."""
    params = _list_params(module, args, if_modified_since)
    per_page, sort_by, sort_order = params.per_page, params.sort_by, params.sort_order
    now = state.timestamp()
    token = args.get("page_token")
    previous_token = None
    if token:
        served, page = _resumed_position(state, token, params, user_id, now)
        previous_token = token
    else:
        served, page = _discrete_position(args, per_page)

    ascending, keys = _sorted(
        state, module, params.ids, sort_by, params.converted, if_modified_since
    )
    start, end, left = _page_window(
        state, token, keys, len(ascending), served, per_page, sort_order
    )
    page_records = ascending[start:end]
    if sort_order == "desc":
        page_records.reverse()
    if not page_records:
        return ListResult(304 if if_modified_since is not None else 204)

    more = left > 0
    next_token = None
    expiry = None
    if more:
        next_token, expiry = _issue_page_token(
            state, params, page_records[-1], served + len(page_records), user_id, now
        )
    only = params.fields or None
    data = [render_record(state, module, r, only) for r in page_records]
    info = {
        "call": False,
        "per_page": per_page,
        "next_page_token": next_token,
        "count": len(data),
        "sort_by": sort_by,
        "page": page,
        "previous_page_token": previous_token,
        "page_token_expiry": expiry,
        "sort_order": sort_order,
        "email": False,
        "more_records": more,
    }
    return ListResult(200, {"data": data, "info": info})


def list_deleted(
    state: SandboxState, module: str, args: dict[str, str], if_modified_since: str | None
) -> ListResult:
    """Answer `GET /{module}/deleted` (reference §2.8)."""
    kind = args.get("type") or "all"
    if kind not in ("all", "recycle", "permanent"):
        raise QueryError(
            "PATTERN_NOT_MATCHED",
            "Please check whether the input values are correct",
            {"param_name": "type"},
        )
    per_page = _int_param(args, "per_page", MAX_PER_PAGE, MAX_PER_PAGE)
    page = _int_param(args, "page", 1, None)
    entries = [
        e
        for e in state.data["deleted"][module]
        if (kind == "all" or e["type"] == kind)
        and (if_modified_since is None or e["deleted_time"] >= if_modified_since)
    ]
    entries.sort(key=lambda e: (e["deleted_time"], e["id"]), reverse=True)
    start = (page - 1) * per_page
    chunk = entries[start : start + per_page]
    if not chunk:
        return ListResult(304 if if_modified_since is not None else 204)
    info = {
        "per_page": per_page,
        "count": len(chunk),
        "page": page,
        "more_records": len(entries) > start + len(chunk),
    }
    return ListResult(200, {"data": [render_deleted(state, e) for e in chunk], "info": info})
