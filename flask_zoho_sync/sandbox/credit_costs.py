"""What each call the sandbox serves costs in Zoho API credits, and the key it is counted under.

Written from the reference (zoho-crm-api.md §4.1) on its own, not borrowed from the client's
estimator (``flask_zoho_sync/zoho/credits.py``): the sandbox's meter is what the client's
budget is checked against, so it has to be an independent reading or a shared mistake would
agree with itself. tests/sandbox/test_formats_agree.py prices every endpoint both ways.

The table, per §4.1: most calls cost 1 credit (Get Records: 1, Kaizen #60); inserting,
updating or upserting records costs 1 credit per 10 records started (a third-party reading
of the v8 page, the only one there is), so updating one record by id costs 1; deleting is
one of "most calls"; converting a lead costs 5; creating a Bulk Write job costs 500.
A COQL query is priced by its LIMIT: 1-200 records 1 credit, 201-1000 2, 1001-2000 3
(Zoho's COQL overview; docs/zoho-api-notes.md).
Calls to the accounts server (OAuth) are no CRM API call and cost nothing.
"""

from __future__ import annotations

import math
import re

#: Records a write of this many costs one credit for (§4.1).
RECORDS_PER_WRITE_CREDIT = 10
CONVERT_LEAD_CREDITS = 5
BULK_WRITE_JOB_CREDITS = 500
#: COQL's price by LIMIT: (highest LIMIT of the step, credits).
COQL_CREDIT_STEPS = ((200, 1), (1000, 2), (2000, 3))
#: LIMIT when a query names none (Zoho's default).
COQL_DEFAULT_LIMIT = 200

#: Path prefixes Zoho's CRM API lives under, and what the meter's key keeps of them.
_API_PREFIXES = (("/crm/bulk/v8/", "/bulk/"), ("/crm/v8/", "/"))
#: Zoho's ids (records, fields, jobs, channels) are strings of digits (§2.1).
_ID_SEGMENT = re.compile(r"\d+", re.ASCII)


def endpoint_key(method: str, path: str) -> str:
    """``"GET /Leads/{id}"``: the method and the API path without its version prefix, ids
    folded to ``{id}`` so that one endpoint is one row of the stats however many records
    were asked for."""
    method = method.upper()
    trimmed = path.split("?", 1)[0].rstrip("/") or "/"
    for prefix, kept in _API_PREFIXES:
        if trimmed.startswith(prefix):
            trimmed = kept + trimmed[len(prefix) :]
            break
    segments = [
        "{id}" if _ID_SEGMENT.fullmatch(segment) else segment for segment in trimmed.split("/")
    ]
    return f"{method} {'/'.join(segments)}"


def credit_cost(
    method: str, path: str, record_count: int = 0, coql_limit: int = COQL_DEFAULT_LIMIT
) -> int:
    """The credits Zoho charges for one call; ``record_count`` is how many records a write
    carried, ``coql_limit`` the LIMIT a COQL query asked for (each ignored elsewhere)."""
    method = method.upper()
    if not path.split("?", 1)[0].startswith("/crm/"):
        return 0  # the accounts server (OAuth) is outside the CRM API's budget
    key = endpoint_key(method, path)
    segments = key.split(" ", 1)[1].strip("/").split("/")
    if key == "POST /bulk/write":
        return BULK_WRITE_JOB_CREDITS
    if key == "POST /coql":
        return coql_credits(coql_limit)
    if method == "POST" and segments[-2:] == ["actions", "convert"]:
        return CONVERT_LEAD_CREDITS
    if _is_record_write(method, segments):
        return max(1, math.ceil(record_count / RECORDS_PER_WRITE_CREDIT))
    return 1


def _is_record_write(method: str, segments: list[str]) -> bool:
    """Insert (``POST /{module}``), update (``PUT /{module}``) or upsert: the calls whose
    price grows with their records. ``PUT /{module}/{id}`` writes one record: one credit."""
    if segments[0] in ("bulk", "settings", "actions", "org", "users", "upload", "coql"):
        return False
    if len(segments) == 1:
        return method in ("POST", "PUT")
    return method == "POST" and segments[1:] == ["upsert"]


def coql_credits(limit: int) -> int:
    """What a COQL query with this LIMIT costs (a refused LIMIT above 2,000 still costs
    the top step: the call reached Zoho)."""
    for highest, credits in COQL_CREDIT_STEPS:
        if limit <= highest:
            return credits
    return COQL_CREDIT_STEPS[-1][1]
