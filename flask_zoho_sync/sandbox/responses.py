"""Zoho's response shapes, built in one place so every endpoint errs the same way.

Request-level errors are a single object ``{"code","details","message","status"}``
(reference §4.5); per-record results sit in ``data[]`` with the same four keys. Empty
results are bodiless 204/304 responses, which clients must not parse as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

JSON = "application/json;charset=UTF-8"

#: Zoho's wording for the 429 (status-code table quoted in reference §4.3).
TOO_MANY_MESSAGE = (
    "Number of API requests for the 24 hour period is exceeded or the concurrency limit "
    "of the user for the app is exceeded."
)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response with Zoho's content type (the SDK parses by Content-Type)."""
    return Response(json.dumps(body), status=status, content_type=JSON, headers=headers)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "details": details or {}, "message": message, "status": "error"}


def zoho_error(
    code: str, message: str, details: dict[str, Any] | None = None, status: int = 400
) -> Response:
    return json_response(error_body(code, message, details), status)


#: What Zoho's servers label every CRM answer with, an empty 204 included: a client that
#: trusts the label over the status and parses the empty body fails here as it would there.
NO_CONTENT_TYPE = JSON


def empty(status: int) -> Response:
    """204 No Content / 304 Not Modified: no body. The 204 keeps Zoho's content type;
    a 304 carries none (it answers a conditional GET, whose body the client already has)."""
    response = Response(status=status)
    response.headers.pop("Content-Type", None)
    if status == 204:
        response.headers["Content-Type"] = NO_CONTENT_TYPE
    return response


def invalid_token() -> Response:
    return zoho_error("INVALID_TOKEN", "invalid oauth token", status=401)


def too_many_requests() -> Response:
    return zoho_error("TOO_MANY_REQUESTS", TOO_MANY_MESSAGE, status=429)


def internal_error() -> Response:
    return zoho_error("INTERNAL_ERROR", "Internal Server Error", status=500)


def batch_status(results: list[dict[str, Any]], success_status: int) -> int:
    """HTTP status of a multi-record write: all ok, mixed (207) or all failed (400).

    Zoho's own status for mixed batches is not documented (reference §12); clients must walk
    ``data[]`` anyway, so the sandbox picks the OAS's 207 to make a status-trusting client
    visibly wrong.
    """
    ok = [r for r in results if r.get("status") == "success"]
    if len(ok) == len(results):
        return success_status
    if ok:
        return 207
    if all(r.get("code") == "ALREADY_MODIFIED" for r in results):
        return 412
    return 400
