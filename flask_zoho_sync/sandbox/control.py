"""The `/__sandbox__/` control API: how tests and the demo steer the emulator.

No auth and plain JSON, because its callers are test fixtures and scripts. Names of the
first five endpoints are fixed by DESIGN.md ("The outside surface"). Record edits made here
act as a human Zoho user (default "Sales Rep"): they cost no API credits and stamp
``Modified_By`` with that user, which is what a sync must recognise as a remote change.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Response, request

from . import tokens
from .field_changes import change_field, delete_field
from .fields import MODULES, FieldSpecError, store_epoch
from .merging import merge_records
from .oauth import base_url
from .query import QueryError
from .records import (
    LeadConversionError,
    apply_batch,
    convert_lead,
    delete_records,
    publish_conversion,
    render_deleted,
    render_record,
)
from .responses import json_response
from .seed import reset_seeded
from .state import DEFAULT_SCOPES, SALES_REP_ID, Faults, SandboxState
from .zoho_time import ZohoTimeRefused, parse_control_instant

#: The scripted fault queues ``/faults`` accepts, with the shape of one entry.
_SCRIPTED_QUEUES = {
    "fail_next": "{status, body?, content_type?, headers?, path_contains?, method?}",
    "delay_next": "{delay_ms, when?: before|after, path_contains?, method?}",
    "garble_next": "{keep?, path_contains?, method?}",
    "fail_records": "{positions: [int] | 'all', code?, message?, path_contains?, method?}",
}


def _bad(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def control_blueprint(state: SandboxState) -> Blueprint:
    bp = Blueprint("sandbox_control", __name__, url_prefix="/__sandbox__")

    def _acting_user(body: dict[str, Any]) -> str | Response:
        key = body.get("user") or request.args.get("user")
        if not key:
            return SALES_REP_ID
        user = state.find_user(str(key))
        return user["id"] if user else _bad(f"unknown user {key!r}")

    def _publish(module: str, operation: str, ids: list[str], affected: dict | None = None) -> None:
        if ids and state.notifier is not None:
            state.notifier.publish(module, operation, ids, affected or {})

    def _clock() -> Response:
        now = state.now()
        return json_response(
            {"now": state.show_now(), "now_utc": now.isoformat(), "timestamp": now.timestamp()}
        )

    # ------------------------------------------------------------- DESIGN.md names
    @bp.post("/tokens")
    def mint() -> Response:
        body = _body()
        scopes = tokens.parse_scopes(body.get("scope")) or list(DEFAULT_SCOPES)
        user = state.find_user(body.get("user")) if body.get("user") else state.data["users"][0]
        if user is None:
            return _bad(f"unknown user {body.get('user')!r}")
        with state.lock:
            refresh = tokens.mint_refresh_token(state, user["id"], scopes)
            state.save()
        url = base_url()
        return json_response(
            {
                "refresh_token": refresh,
                "client_id": state.client_id,
                "client_secret": state.client_secret,
                "accounts_server": url,
                "api_domain": url,
                "scope": " ".join(scopes),
                "user": {"id": user["id"], "email": user["email"]},
            },
            201,
        )

    @bp.get("/info")
    def info() -> Response:
        """What a fixture needs to point a client here."""
        url = base_url()
        return json_response(
            {
                "url": url,
                "accounts_server": url,
                "api_domain": url,
                "client_id": state.client_id,
                "client_secret": state.client_secret,
                "location": state.location,
                "org_time_zone": state.data["org"]["time_zone"],
                "now": state.show_now(),
            }
        )

    @bp.get("/stats")
    def stats() -> Response:
        return json_response(state.stats())

    @bp.post("/reset")
    def reset() -> Response:
        body = _body()
        seed = body.get("seed")
        reset_seeded(
            state,
            keep_custom_fields=bool(body.get("keep_custom_fields")),
            keep_tokens=bool(body.get("keep_tokens")),
            seed=int(seed) if seed is not None else None,
        )
        return json_response({"status": "reset", "now": state.show_now()})

    @bp.route("/faults", methods=["GET", "POST"])
    def faults() -> Response:
        body = _body() if request.method == "POST" else {}
        with state.lock:
            if body.get("clear"):
                fresh = Faults()
                fresh.seed = state.faults.seed
                fresh.rng.seed(fresh.seed)
                state.faults = fresh
            current = state.faults
            try:
                if "latency_ms" in body:
                    current.latency_ms = max(0, int(body["latency_ms"]))
                for key in ("rate_429", "rate_5xx"):
                    if key in body:
                        value = float(body[key])
                        if not 0 <= value <= 1:
                            return _bad(f"{key} must be between 0 and 1")
                        setattr(current, key, value)
                if "seed" in body:
                    current.seed = int(body["seed"])
                    current.rng.seed(current.seed)
                for key, shape in _SCRIPTED_QUEUES.items():
                    if key not in body:
                        continue
                    items = body[key]
                    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                        return _bad(f"{key} must be a list of {shape}")
                    setattr(current, key, [dict(item) for item in items])
                if "page_token_ttl" in body:
                    value = body["page_token_ttl"]
                    current.page_token_ttl = None if value is None else max(0.0, float(value))
                if "token_ttl" in body:
                    state.token_ttl = int(body["token_ttl"])
                if "daily_credits" in body:
                    value = body["daily_credits"]
                    state.daily_credits = None if value is None else int(value)
                if "concurrency_limit" in body:
                    state.concurrency_limit = max(1, int(body["concurrency_limit"]))
                if body.get("consume_credits"):
                    state.charge("(consumed by test)", int(body["consume_credits"]))
            except (TypeError, ValueError) as exc:
                return _bad(str(exc))
            if body.get("expire_access_tokens"):
                tokens.expire_all(state)
            if body.get("revoke_all_tokens"):
                tokens.revoke_all(state)
            state.save()
            return json_response(
                {
                    **current.as_json(),
                    "token_ttl": state.token_ttl,
                    "daily_credits": state.credit_limit(),
                    "concurrency_limit": state.concurrency_limit,
                }
            )

    @bp.route("/clock", methods=["GET", "POST"])
    def clock() -> Response:
        body = _body() if request.method == "POST" else {}
        if "advance_seconds" in body:
            try:
                state.advance_clock(float(body["advance_seconds"]))
            except (TypeError, ValueError):
                return _bad("advance_seconds must be a number")
        elif "set" in body:
            try:
                state.set_clock(parse_control_instant(body["set"]))
            except ZohoTimeRefused as exc:
                return _bad(str(exc))
        return _clock()

    # -------------------------------------------------------------- records as a user
    def _module_or_404(module: str) -> Response | None:
        return None if module in MODULES else _bad(f"unknown module {module!r}", 404)

    @bp.get("/records/<module>")
    def list_records(module: str) -> Response:
        if (problem := _module_or_404(module)) is not None:
            return problem
        with state.lock:
            records = sorted(state.data["records"][module].values(), key=lambda r: r["id"])
            data = [render_record(state, module, r) for r in records]
        return json_response({"data": data, "count": len(data)})

    @bp.post("/records/<module>")
    def create_records(module: str) -> Response:
        """Create as a Zoho user: ``{"fields": {...}}``, ``{"records": [...]}`` or
        ``{"generate": n}`` (n quick synthetic leads/contacts for pagination tests)."""
        if (problem := _module_or_404(module)) is not None:
            return problem
        body = _body()
        user_id = _acting_user(body)
        if isinstance(user_id, Response):
            return user_id
        if "generate" in body:
            start = int(body.get("start", 1))
            items = [
                {
                    "First_Name": "Test",
                    "Last_Name": f"Person {n:05d}",
                    "Email": f"person{n:05d}@example.test",
                }
                for n in range(start, start + int(body["generate"]))
            ]
        elif "records" in body:
            items = body["records"]
            if not isinstance(items, list):
                return _bad("records must be a list")
        else:
            items = [body.get("fields", {k: v for k, v in body.items() if k != "user"})]
        with state.lock:
            outcome = apply_batch(state, module, "insert", items, user_id)
            _publish(module, "insert", outcome.inserted, outcome.affected)
            state.save()
            created = [
                render_record(state, module, state.data["records"][module][i])
                for i in outcome.inserted
            ]
        failed = [r for r in outcome.results if r["status"] != "success"]
        if len(items) == 1:
            if failed:
                return json_response({"error": failed[0]}, 400)
            return json_response({"record": created[0], "result": outcome.results[0]}, 201)
        return json_response(
            {
                "created": len(created),
                "ids": outcome.inserted,
                "results": outcome.results if failed else [],
            },
            201 if not failed else 207,
        )

    @bp.get("/records/<module>/<record_id>")
    def get_record(module: str, record_id: str) -> Response:
        if (problem := _module_or_404(module)) is not None:
            return problem
        with state.lock:
            record = state.data["records"][module].get(record_id)
            if record is None:
                return _bad("no such record", 404)
            return json_response({"record": render_record(state, module, record)})

    @bp.patch("/records/<module>/<record_id>")
    def edit_record(module: str, record_id: str) -> Response:
        if (problem := _module_or_404(module)) is not None:
            return problem
        body = _body()
        user_id = _acting_user(body)
        if isinstance(user_id, Response):
            return user_id
        fields = body.get("fields", {k: v for k, v in body.items() if k != "user"})
        with state.lock:
            if record_id not in state.data["records"][module]:
                return _bad("no such record", 404)
            outcome = apply_batch(state, module, "update", [{**fields, "id": record_id}], user_id)
            _publish(module, "update", outcome.updated, outcome.affected)
            state.save()
            if outcome.results[0]["status"] != "success":
                return json_response({"error": outcome.results[0]}, 400)
            record = state.data["records"][module][record_id]
            return json_response(
                {"record": render_record(state, module, record), "result": outcome.results[0]}
            )

    @bp.delete("/records/<module>/<record_id>")
    def remove_record(module: str, record_id: str) -> Response:
        if (problem := _module_or_404(module)) is not None:
            return problem
        user_id = _acting_user(_body())
        if isinstance(user_id, Response):
            return user_id
        permanent = request.args.get("permanent", "false").lower() == "true"
        with state.lock:
            results, deleted = delete_records(
                state, module, [record_id], user_id, permanent=permanent
            )
            _publish(module, "delete", deleted)
            state.save()
        if not deleted:
            return _bad("no such record", 404)
        return json_response({"result": results[0]})

    @bp.post("/records/Leads/<record_id>/convert")
    def convert(record_id: str) -> Response:
        """Convert a lead as a Zoho user would, at no credit cost. The body takes what the
        API's ``data[0]`` takes (``Contacts``, ``Accounts``, ``Deals``) and ``user_id``."""
        body = _body()
        user_id = _acting_user(body)
        if isinstance(user_id, Response):
            return user_id
        with state.lock:
            try:
                outcome = convert_lead(state, record_id, user_id, body)
            except LeadConversionError as error:
                missing = error.code == "INVALID_DATA" and "resource_path_index" in error.details
                return _bad(
                    f"{error.code}: {error.message} {error.details}", 404 if missing else 400
                )
            publish_conversion(state, record_id, outcome)
            state.save()
        return json_response(outcome)

    @bp.post("/records/<module>/<record_id>/merge")
    def merge(module: str, record_id: str) -> Response:
        """A Zoho user's Find and Merge: body ``{"merge": [{"data": [...]}]}`` as the API
        takes it, plus ``user``; no credits spent."""
        body = _body()
        user_id = _acting_user(body)
        if isinstance(user_id, Response):
            return user_id
        with state.lock:
            try:
                element, deleted = merge_records(state, module, record_id, body, user_id)
            except QueryError as error:
                return _bad(f"{error.code}: {error.message} {error.details}")
            _publish(module, "delete", deleted)
            _publish(module, "update", [record_id])
            state.save()
        return json_response({"result": element, "deleted": deleted})

    @bp.get("/deleted/<module>")
    def recycle_bin(module: str) -> Response:
        if (problem := _module_or_404(module)) is not None:
            return problem
        with state.lock:
            data = [render_deleted(state, e) for e in state.data["deleted"][module]]
        return json_response({"data": data})

    # ------------------------------------------------------------ metadata, org, logs
    @bp.route("/fields/<module>", methods=["GET", "POST"])
    def fields(module: str) -> Response:
        if (problem := _module_or_404(module)) is not None:
            return problem
        if request.method == "POST":
            try:
                spec = state.add_custom_field(module, _body())
            except (FieldSpecError, ValueError) as exc:
                return _bad(str(exc))
            return json_response({"field": spec.metadata(module)}, 201)
        with state.lock:
            return json_response({"fields": [s.metadata(module) for s in state.fields(module)]})

    @bp.route("/fields/<module>/<api_name>", methods=["PATCH", "DELETE"])
    def field_change(module: str, api_name: str) -> Response:
        """What a Zoho admin does to a custom field in setup (``field_changes``)."""
        if (problem := _module_or_404(module)) is not None:
            return problem
        try:
            if request.method == "DELETE":
                delete_field(state, module, api_name)
                return json_response({"deleted": api_name})
            spec = change_field(state, module, api_name, _body())
        except FieldSpecError as exc:
            return _bad(str(exc), 404 if "has no field" in str(exc) else 400)
        return json_response({"field": spec.metadata(module)})

    @bp.route("/org", methods=["GET", "POST"])
    def org() -> Response:
        body = _body() if request.method == "POST" else {}
        with state.lock:
            current = state.data["org"]
            if "time_zone" in body:
                try:
                    ZoneInfo(str(body["time_zone"]))
                except (ZoneInfoNotFoundError, ValueError, OSError):
                    return _bad(f"unknown time zone {body['time_zone']!r}")
            for key, value in body.items():
                if key in current and key != "id":
                    current[key] = value
            state.save()
            return json_response({"org": dict(current)})

    @bp.post("/unique-email/<module>")
    def unique_email(module: str) -> Response:
        """Tick (``{"refuse": true}``) or untick Email's "Do not allow duplicate values"."""
        if (problem := _module_or_404(module)) is not None:
            return problem
        refuse = bool(_body().get("refuse", True))
        with state.lock:
            modules = set(state.data.get("unique_email_modules", ()))
            modules = modules | {module} if refuse else modules - {module}
            state.data["unique_email_modules"] = sorted(modules)
            state.save()
        return json_response({"unique_email_modules": sorted(modules)})

    @bp.get("/users")
    def users() -> Response:
        with state.lock:
            return json_response({"users": list(state.data["users"])})

    @bp.route("/notifications", methods=["GET", "DELETE"])
    def notifications() -> Response:
        notifier = state.notifier
        if notifier is None:
            return json_response({"deliveries": []})
        if request.method == "DELETE":
            notifier.clear_log()
            return json_response({"deliveries": []})
        wait = float(request.args.get("wait", "0") or 0)
        if wait:
            notifier.drain(timeout=wait)
        return json_response({"deliveries": notifier.log()})

    @bp.get("/channels")
    def channels() -> Response:
        with state.lock:
            listed = [
                {**c, "channel_expiry": state.show(store_epoch(c["expires_at"]))}
                for c in state.data["channels"].values()
            ]
        return json_response({"channels": listed})

    return bp
