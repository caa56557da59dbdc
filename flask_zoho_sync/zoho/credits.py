"""How Zoho prices a call, shared by the client's meter and the sandbox's ledger.

Zoho rations API credits per rolling 24 hours (reference §4.1). The client estimates what
each call cost so the admin pages and benchmarks can show it; the sandbox charges the same
table so that the two agree when tests compare them. Keeping one table in one place means a
pricing change is one edit.
"""

from __future__ import annotations

import math
import re

#: Paths are normalised to a template so per-module and per-id calls aggregate sensibly.
_ID_SEGMENT = re.compile(r"/\d{6,}(?=/|$)")
_VERSION_PREFIX = re.compile(r"^/crm/(bulk/)?v\d+")

#: Calls whose price depends on how many records they carry (3rd-party summary of the
#: v8 limits page: one credit per ten records, at least one).
_PER_TEN_RECORDS = ("POST /{module}", "PUT /{module}", "POST /{module}/upsert")

#: Calls with a fixed price other than one credit.
_FIXED_PRICES = {
    "POST /{module}/{id}/actions/convert": 5,
    "POST /bulk/write": 500,
}

_MODULE_SEGMENT = re.compile(r"^/(Leads|Contacts|[A-Z][A-Za-z0-9_]*)(?=/|$)")


def endpoint_key(method: str, path: str) -> str:
    """Name a call the way the meter and the sandbox's stats both report it.

    ``("GET", "/crm/v8/Leads/5725767000000524157")`` becomes ``"GET /Leads/{id}"``;
    ``("POST", "/crm/v8/Contacts/upsert")`` becomes ``"POST /Contacts/upsert"``;
    ``("POST", "/oauth/v2/token")`` stays as it is.
    """
    path = path.split("?", 1)[0].rstrip("/") or "/"
    # Bulk calls keep their ``/bulk`` so that a 500-credit write job is told apart from a
    # one-credit call: ``/crm/bulk/v8/write`` -> ``/bulk/write``.
    path = _VERSION_PREFIX.sub(lambda match: "/bulk" if match.group(1) else "", path)
    path = _ID_SEGMENT.sub("/{id}", path)
    return f"{method.upper()} {path}"


def _template(key: str) -> str:
    method, _, path = key.partition(" ")
    if path.startswith(("/settings", "/org", "/users", "/actions", "/bulk", "/oauth", "/coql")):
        return key
    return f"{method} {_MODULE_SEGMENT.sub('/{module}', path)}"


def estimate_credits(method: str, path: str, record_count: int = 0) -> int:
    """Credits one call costs; OAuth calls cost none (they are not CRM API calls)."""
    key = endpoint_key(method, path)
    if key.split(" ", 1)[1].startswith("/oauth"):
        return 0
    template = _template(key)
    if template in _FIXED_PRICES:
        return _FIXED_PRICES[template]
    if template in _PER_TEN_RECORDS:
        return max(1, math.ceil(record_count / 10))
    return 1
