"""`/crm/v8/actions/watch`: subscribing to record-change notifications (reference §5).

Channel rules a sync trips over are kept: ``token`` at most 50 characters, expiry at most a
week ahead (otherwise, or when omitted, one hour), events named ``{Module}.{op}``. Delivery
itself is ``notifications.Notifier``'s job.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, g, request

from .fields import MODULE_IDS, MODULES, store_epoch
from .guard import crm_call
from .oauth import base_url
from .responses import batch_status, empty, error_body, json_response, zoho_error
from .state import SandboxState
from .zoho_time import ZohoTimeRefused, parse_datetime

MAX_TOKEN_LENGTH = 50
MAX_EXPIRY = timedelta(days=7)
DEFAULT_EXPIRY = timedelta(hours=1)
_OPS = ("create", "edit", "delete", "all")


class ChannelProblem(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["code"])
        self.body = body


def _invalid(index: int, api_name: str, **extra: Any) -> ChannelProblem:
    details = {"api_name": api_name, "json_path": f"$.watch[{index}].{api_name}", **extra}
    return ChannelProblem(error_body("INVALID_DATA", "invalid data", details))


def _missing(index: int, api_name: str) -> ChannelProblem:
    details = {"api_name": api_name, "json_path": f"$.watch[{index}].{api_name}"}
    return ChannelProblem(error_body("MANDATORY_NOT_FOUND", "required field not found", details))


def _channel_key(raw: Any, index: int) -> str:
    if raw is None or raw == "":
        raise _missing(index, "channel_id")
    text = str(raw)
    if isinstance(raw, bool) or not text.isdigit():
        raise _invalid(index, "channel_id", expected_data_type="long")
    return text


def _apply(
    state: SandboxState, item: dict[str, Any], index: int, channel: dict[str, Any], full: bool
) -> dict[str, Any]:
    """Validate ``item`` onto ``channel`` (all keys required when ``full``)."""
    updated = dict(channel)
    if full or "events" in item:
        events = item.get("events")
        if not events:
            raise _missing(index, "events")
        if not isinstance(events, list):
            raise _invalid(index, "events", expected_data_type="jsonarray")
        for event in events:
            module, _, op = str(event).partition(".")
            if module not in MODULES or op not in _OPS:
                raise _invalid(index, "events")
        updated["events"] = list(dict.fromkeys(str(e) for e in events))
    if full or "notify_url" in item:
        url = item.get("notify_url")
        if not url:
            raise _missing(index, "notify_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid(index, "notify_url")
        updated["notify_url"] = url
    if full or "token" in item:
        token = item.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH):
            raise _invalid(index, "token", maximum_length=MAX_TOKEN_LENGTH)
        updated["token"] = token
    if full or "channel_expiry" in item:
        updated["expires_at"] = _expiry(state, item.get("channel_expiry"), index)
    if full or "notification_condition" in item:
        updated["notification_condition"] = _conditions(state, item, index)
    for flag, default in (
        ("return_affected_field_values", False),
        ("notify_on_related_action", True),
    ):
        if full or flag in item:
            value = item.get(flag, default)
            if not isinstance(value, bool):
                raise _invalid(index, flag, expected_data_type="boolean")
            updated[flag] = value
    return updated


MAX_CONDITION_FIELDS = 10


def _conditions(state: SandboxState, item: dict[str, Any], index: int) -> list[Any] | None:
    """``notification_condition``: kept as Zoho echoes it in the channel details (every
    group entry with ``field``, ``group_operator`` and ``group``), after the checks the
    enable page lists: known module and fields, ``and``/``or``, at most 10 fields."""
    raw = item.get("notification_condition")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _invalid(index, "notification_condition", expected_data_type="jsonarray")
    counted = [0]

    def group(entry: Any, module: str, path: str) -> dict[str, Any]:
        if not isinstance(entry, dict):
            raise _invalid(index, path, expected_data_type="jsonobject")
        if entry.get("field") is not None:
            field = entry["field"]
            name = field.get("api_name") if isinstance(field, dict) else None
            spec = state.field_map(module).get(str(name))
            if spec is None:
                raise _invalid(index, f"{path}.field.api_name")
            counted[0] += 1
            if counted[0] > MAX_CONDITION_FIELDS:
                raise _invalid(index, path, maximum_length=MAX_CONDITION_FIELDS)
            return {
                "field": {"api_name": spec.api_name, "id": spec.field_id},
                "group_operator": None,
                "group": None,
            }
        operator = entry.get("group_operator")
        members = entry.get("group")
        if operator not in ("and", "or"):
            raise _invalid(index, f"{path}.group_operator")
        if not isinstance(members, list) or not members:
            raise _invalid(index, f"{path}.group", expected_data_type="jsonarray")
        return {
            "group_operator": operator,
            "group": [group(m, module, f"{path}.group[{i}]") for i, m in enumerate(members)],
        }

    kept = []
    for number, condition in enumerate(raw):
        path = f"notification_condition[{number}]"
        if not isinstance(condition, dict):
            raise _invalid(index, path, expected_data_type="jsonobject")
        if condition.get("type") != "field_selection":
            raise _invalid(index, f"{path}.type")
        module_ref = condition.get("module")
        module = module_ref.get("api_name") if isinstance(module_ref, dict) else None
        if module not in MODULES:
            raise _invalid(index, f"{path}.module")
        selection = group(condition.get("field_selection"), module, f"{path}.field_selection")
        kept.append(
            {
                "field_selection": selection,
                "module": {"api_name": module, "id": MODULE_IDS[module]},
                "type": "field_selection",
            }
        )
    return kept


def _expiry(state: SandboxState, raw: Any, index: int) -> float:
    now = state.now()
    if raw in (None, ""):
        return (now + DEFAULT_EXPIRY).timestamp()
    try:
        moment = parse_datetime(str(raw))
    except ZohoTimeRefused:
        raise _invalid(index, "channel_expiry", expected_data_type="datetime") from None
    if moment <= now:
        raise _invalid(index, "channel_expiry")
    if moment - now > MAX_EXPIRY:
        return (now + DEFAULT_EXPIRY).timestamp()
    return moment.timestamp()


def _module_entries(state: SandboxState, channel: dict[str, Any]) -> list[dict[str, Any]]:
    modules = list(dict.fromkeys(e.split(".")[0] for e in channel["events"]))
    expiry = state.show(store_epoch(channel["expires_at"]))
    return [
        {
            "channel_expiry": expiry,
            "resource_uri": f"{channel['base_url']}/crm/v2/{module}",
            "resource_id": MODULE_IDS[module],
            "resource_name": module,
            "channel_id": channel["channel_id"],
        }
        for module in modules
    ]


def watch_blueprint(state: SandboxState) -> Blueprint:
    bp = Blueprint("sandbox_watch", __name__, url_prefix="/crm/v8/actions")

    def _items() -> list[Any] | Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return zoho_error(
                "INVALID_DATA", "body is not a valid JSON", {"expected_data_type": "jsonobject"}
            )
        items = body.get("watch")
        if not isinstance(items, list) or not items:
            return zoho_error(
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "watch"},
            )
        return items

    def _save_all(items: list[Any], mode: str) -> Response:
        results = []
        with state.lock:
            channels = state.data["channels"]
            for index, item in enumerate(items):
                try:
                    if not isinstance(item, dict):
                        raise _invalid(index, "watch", expected_data_type="jsonobject")
                    key = _channel_key(item.get("channel_id"), index)
                    if mode != "enable" and key not in channels:
                        raise _invalid(index, "channel_id")
                    base = channels.get(key) or {
                        "channel_id": key,
                        "base_url": base_url(),
                        "user_id": g.sandbox_user_id,
                    }
                    channel = _apply(state, item, index, base, full=mode != "patch")
                except ChannelProblem as problem:
                    results.append(problem.body)
                    continue
                channels[key] = channel
                message = (
                    "Successfully subscribed for actions-watch of the given module"
                    if mode == "enable"
                    else "Successfully updated the subscribe details"
                )
                results.append(
                    {
                        "code": "SUCCESS",
                        "details": {"events": _module_entries(state, channel)},
                        "message": message,
                        "status": "success",
                    }
                )
            state.save()
        # Enabling answers 201, replacing or patching 200 (zoho/crm-oas v8.0/notifications.json).
        return json_response(
            {"watch": results}, batch_status(results, 201 if mode == "enable" else 200)
        )

    @bp.post("/watch")
    @crm_call(state, ("notifications",), "CREATE")
    def enable() -> Response:
        items = _items()
        return items if isinstance(items, Response) else _save_all(items, "enable")

    @bp.put("/watch")
    @crm_call(state, ("notifications",), "UPDATE")
    def replace() -> Response:
        items = _items()
        return items if isinstance(items, Response) else _save_all(items, "put")

    @bp.patch("/watch")
    @crm_call(state, ("notifications",), "UPDATE")
    def patch() -> Response:
        items = _items()
        return items if isinstance(items, Response) else _save_all(items, "patch")

    @bp.get("/watch")
    @crm_call(state, ("notifications",), "READ")
    def details() -> Response:
        wanted_channel = request.args.get("channel_id")
        wanted_module = request.args.get("module")
        out = []
        with state.lock:
            now = state.timestamp()
            for channel in state.data["channels"].values():
                if channel["expires_at"] <= now:
                    continue
                if wanted_channel and channel["channel_id"] != wanted_channel:
                    continue
                for entry in _module_entries(state, channel):
                    module = entry["resource_name"]
                    if wanted_module and module != wanted_module:
                        continue
                    out.append(
                        {
                            "notify_on_related_action": channel["notify_on_related_action"],
                            "channel_expiry": entry["channel_expiry"],
                            "return_affected_field_values": channel["return_affected_field_values"],
                            "resource_uri": entry["resource_uri"],
                            "resource_id": entry["resource_id"],
                            "notify_url": channel["notify_url"],
                            "resource_name": module,
                            "fields": None,
                            "notification_condition": [
                                condition
                                for condition in channel.get("notification_condition") or []
                                if condition["module"]["api_name"] == module
                            ]
                            or None,
                            "channel_id": channel["channel_id"],
                            "events": [e for e in channel["events"] if e.startswith(module + ".")],
                            "token": channel.get("token"),
                        }
                    )
        if not out:
            return empty(204)
        info = {"per_page": 200, "count": len(out), "page": 1, "more_records": False}
        return json_response({"watch": out, "info": info})

    @bp.delete("/watch")
    @crm_call(state, ("notifications",), "DELETE")
    def disable() -> Response:
        ids = [p.strip() for p in request.args.get("channel_ids", "").split(",") if p.strip()]
        if not ids:
            return zoho_error(
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "channel_ids"},
            )
        results = []
        with state.lock:
            for key in ids:
                channel = state.data["channels"].pop(key, None)
                if channel is None:
                    results.append(error_body("INVALID_DATA", "invalid data", {"channel_id": key}))
                    continue
                # One element per module the channel watched, naming it (disable page sample).
                for entry in _module_entries(state, channel):
                    results.append(
                        {
                            "code": "SUCCESS",
                            "details": {
                                "resource_uri": entry["resource_uri"],
                                "resource_id": entry["resource_id"],
                                "channel_id": key,
                            },
                            "message": "Successfully un-subscribed from actions-watch",
                            "status": "success",
                        }
                    )
            state.save()
        return json_response({"watch": results}, batch_status(results, 200))

    return bp
