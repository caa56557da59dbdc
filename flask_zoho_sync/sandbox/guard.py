"""What stands in front of every Zoho call: faults, concurrency, credits, auth, metering.

Real Zoho fails in ways a happy-path emulator never shows: 429s with no Retry-After,
expired tokens mid-run, HTML error pages, slow answers. Putting these in one gate in front
of the views lets tests script any of them without the views knowing, and keeps the
call/credit meter (priced by the sandbox's own reading of Zoho's table, credit_costs.py)
in one place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, g, request

from . import tokens
from .credit_costs import COQL_DEFAULT_LIMIT, credit_cost, endpoint_key
from .fields import MODULES, store_epoch
from .responses import (
    JSON,
    error_body,
    internal_error,
    invalid_token,
    json_response,
    too_many_requests,
    zoho_error,
)
from .state import SandboxState

_DEFAULT_FAULT_BODIES = {
    401: error_body("INVALID_TOKEN", "invalid oauth token"),
    429: error_body("TOO_MANY_REQUESTS", "Number of API requests exceeded"),
}


def _metered_kind(path: str) -> str | None:
    if path.startswith("/crm/"):
        return "crm"
    if path.startswith("/oauth/v2/token"):
        return "oauth"
    return None


def _fault_response(spec: dict[str, Any]) -> Response:
    """Build a scripted response: JSON by default, or any text (an HTML error page...)."""
    status = int(spec.get("status", 500))
    body = spec.get("body")
    if body is None:
        body = _DEFAULT_FAULT_BODIES.get(status) or error_body(
            "INTERNAL_ERROR" if status >= 500 else "INVALID_DATA",
            "Internal Server Error" if status >= 500 else "invalid data",
        )
    if isinstance(body, str):
        content_type = spec.get("content_type") or "text/html;charset=UTF-8"
        text = body
    else:
        content_type = spec.get("content_type") or "application/json;charset=UTF-8"
        text = json.dumps(body)
    response = Response(text, status=status, content_type=content_type)
    for key, value in (spec.get("headers") or {}).items():
        response.headers[key] = str(value)
    return response


def take_matching(state: SandboxState, queue: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Pop the first scripted spec of ``queue`` whose ``path_contains`` and ``method`` fit
    the current request: each spec acts on exactly one request."""
    target = request.full_path
    with state.lock:
        for index, spec in enumerate(queue):
            if spec.get("path_contains") and spec["path_contains"] not in target:
                continue
            if spec.get("method") and str(spec["method"]).upper() != request.method:
                continue
            return queue.pop(index)
    return None


def take_record_failures(state: SandboxState) -> dict[str, Any] | None:
    """The ``fail_records`` spec for this write call, if one matches (called by the write
    views only, so a read never uses one up)."""
    return take_matching(state, state.faults.fail_records)


def _pause(spec: dict[str, Any]) -> None:
    time.sleep(max(0, float(spec.get("delay_ms", 0))) / 1000)


def install_guard(app: Flask, state: SandboxState) -> None:
    """Register the request hooks that meter and perturb `/crm` and `/oauth/v2/token`."""

    @app.before_request
    def _gate() -> Response | None:
        kind = _metered_kind(request.path)
        if kind is None:
            return None
        g.sandbox_key = endpoint_key(request.method, request.path)
        state.count_call(g.sandbox_key)
        if kind == "crm":
            if not state.try_enter():
                return too_many_requests()
            g.sandbox_slot = True
        latency = state.faults.latency_ms
        if latency:
            time.sleep(latency / 1000)
        delayed = take_matching(state, state.faults.delay_next)
        if delayed is not None:
            if delayed.get("when", "before") == "after":
                g.sandbox_delay_after = delayed
            else:
                _pause(delayed)
        g.sandbox_garble = take_matching(state, state.faults.garble_next)
        scripted = take_matching(state, state.faults.fail_next)
        if scripted is not None:
            return _fault_response(scripted)
        if kind != "crm":
            return None
        with state.lock:
            roll_429 = state.faults.rng.random() if state.faults.rate_429 else 1.0
            roll_5xx = state.faults.rng.random() if state.faults.rate_5xx else 1.0
        if roll_429 < state.faults.rate_429:
            return too_many_requests()
        if roll_5xx < state.faults.rate_5xx:
            return internal_error()
        if state.credits_remaining() <= 0:
            with state._meter_lock:
                state.rejected["credits"] += 1
            return too_many_requests()
        return None

    @app.after_request
    def _meter(response: Response) -> Response:
        key = g.get("sandbox_key")
        if key is None:
            return response
        state.count_status(response.status_code)
        if g.get("sandbox_authenticated") and response.status_code < 429:
            amount = credit_cost(
                request.method,
                request.path,
                g.get("sandbox_record_count", 0),
                g.get("sandbox_coql_limit", COQL_DEFAULT_LIMIT),
            )
            state.charge(key, amount)
        if _metered_kind(request.path) == "crm":
            if response.content_type == JSON and response.status_code != 204:
                response.headers.setdefault(
                    "Content-Disposition", "attachment; filename=response.json"
                )
            expires_at = g.get("sandbox_token_expires_at")
            if expires_at is not None:
                # Zoho names, on every answer to a valid token, when that token expires
                # (recorded answers: ``X-ACCESSTOKEN-RESET: 2024-08-01T19:21:19+08:00``).
                response.headers["X-ACCESSTOKEN-RESET"] = state.show(store_epoch(expires_at))
            limit = state.credit_limit()
            used = state.credits_used()
            if used * 2 >= limit:
                response.headers["X-API-CREDITS-REMAINING"] = str(max(0, limit - used))
        garble = g.pop("sandbox_garble", None)
        if garble is not None:
            data = response.get_data()
            keep = garble.get("keep")
            response.set_data(data[: int(keep) if keep is not None else len(data) // 2])
        delayed = g.pop("sandbox_delay_after", None)
        if delayed is not None:
            _pause(delayed)  # the work is done; only the answer is late
        return response

    @app.teardown_request
    def _release(_exc: BaseException | None) -> None:
        if g.pop("sandbox_slot", False):
            state.leave()


def crm_call(
    state: SandboxState,
    resource: tuple[str, ...] | None,
    operation: str,
    service: str = "ZohoCRM",
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Authenticate a CRM view and check its scope (``resource=None``: the URL's module).

    Order of checks follows what clients observe from Zoho: a bad or expired token is a
    401 before anything else; then an unknown module is a 400; then a missing scope.
    """

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            header = request.headers.get("Authorization", "")
            scheme, _, value = header.partition(" ")
            if scheme != "Zoho-oauthtoken" or not value.strip():
                return zoho_error("AUTHENTICATION_FAILURE", "Authentication failed", status=401)
            with state.lock:
                access = tokens.check_access_token(state, value.strip())
            if access == "INVALID_OAUTHTOKEN":
                return zoho_error("INVALID_OAUTHTOKEN", "invalid oauth token", status=401)
            if isinstance(access, str):
                return invalid_token()
            g.sandbox_authenticated = True
            g.sandbox_token_expires_at = access["expires_at"]
            g.sandbox_user_id = access["user_id"]
            g.sandbox_scopes = access["scopes"]
            needed = resource
            if needed is None:
                module = kwargs.get("module") or request.args.get("module")
                if module not in MODULES:
                    return zoho_error(
                        "INVALID_MODULE",
                        "the module name given seems to be invalid",
                        {"resource_path_index": 0},
                    )
                needed = ("modules", module.lower())
            if not tokens.scope_allows(access["scopes"], needed, operation, service):
                return zoho_error("OAUTH_SCOPE_MISMATCH", "Unauthorized", status=401)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def not_found() -> Response:
    return zoho_error(
        "INVALID_URL_PATTERN",
        "Please check if the URL trying to access is a correct one",
        status=404,
    )


def method_not_allowed() -> Response:
    return json_response(
        error_body("INVALID_REQUEST_METHOD", "The http request method type is not a valid one"),
        400,
    )
