"""`/crm/v8` records and metadata endpoints, in Zoho's wire format.

Each view parses the request, takes the state lock for the data work and answers with the
shapes in reference §2-§3. Validation and write rules live in ``records``/``query`` so the
control API and the UI share them; this module only speaks HTTP.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, request

from . import tokens
from .coql import parser_for, run_query
from .fields import MODULE_IDS, MODULES, PROFILES
from .guard import crm_call, take_record_failures
from .merging import merge_records
from .query import QueryError, list_deleted, list_records, parse_header_instant
from .records import (
    DuplicateCheckError,
    LeadConversionError,
    apply_batch,
    convert_lead,
    delete_records,
    is_converted,
    publish_conversion,
    render_full_record,
    resolve_duplicate_check,
    restore_from_recycle_bin,
)
from .responses import batch_status, empty, json_response, zoho_error
from .search import search_records
from .state import SandboxState

MAX_RECORDS_PER_CALL = 100
USER_TYPES = (
    "AllUsers",
    "ActiveUsers",
    "DeactiveUsers",
    "ConfirmedUsers",
    "NotConfirmedUsers",
    "DeletedUsers",
    "ActiveConfirmedUsers",
    "AdminUsers",
    "ActiveConfirmedAdmins",
    "CurrentUser",
)


def _query_error(error: QueryError) -> Response:
    return zoho_error(error.code, error.message, error.details, error.status)


#: When the sandbox org and its users were set up, as `GET /org` and `GET /users` show it.
ORG_CREATED = "2024-01-15T09:00:00+00:00"


def render_user(state: SandboxState, user: dict[str, Any]) -> dict[str, Any]:
    """A user as `GET /users` shows it, with every key of Zoho's sample (reference §3.4);
    the zone is the org's, and the org's first user (the admin) set everyone up."""
    offset = state.now().astimezone(state.zone).utcoffset()
    admin = state.data["users"][0]
    admin_brief = {"name": f"{admin['first_name']} {admin['last_name']}", "id": admin["id"]}
    created = state.show(ORG_CREATED)
    return {
        "country": "US",
        "name_format__s": "Salutation,First Name,Last Name",
        "language": "en_US",
        "microsoft": False,
        "$shift_effective_from": None,
        "id": user["id"],
        "state": "California",
        "fax": None,
        "country_locale": "en_US",
        "sandboxDeveloper": False,
        "zip": None,
        "decimal_separator": "Period",
        "created_time": created,
        "time_format": "hh:mm a",
        "offset": int(offset.total_seconds() * 1000) if offset is not None else 0,
        "profile": dict(user["profile"]),
        "created_by": dict(admin_brief),
        "zuid": f"7{user['id'][-8:]}",
        "full_name": f"{user['first_name']} {user['last_name']}",
        "phone": user.get("phone") or "+1 555 0100",
        "dob": user.get("dob") or "1990-01-01",
        "sort_order_preference__s": "First Name,Last Name",
        "status": "active",
        "type__s": "Regular User",
        "role": dict(user["role"]),
        "customize_info": {
            "notes_desc": None,
            "show_right_panel": None,
            "bc_view": None,
            "show_home": False,
            "show_detail_view": True,
            "show_left_panel": True,
            "unpin_recent_item": None,
        },
        "city": None,
        "signature": None,
        "locale": "en_US",
        "personal_account": False,
        "Isonline": False,
        "default_tab_group": "0",
        "Modified_By": dict(admin_brief),
        "street": None,
        "$current_shift": None,
        "alias": None,
        "theme": {
            "normal_tab": {"font_color": "#FFFFFF", "background": "#222222"},
            "selected_tab": {"font_color": "#FFFFFF", "background": "#222222"},
            "new_background": None,
            "background": "#F3F0EB",
            "screen": "fixed",
            "type": "default",
        },
        "first_name": user["first_name"],
        "email": user["email"],
        "status_reason__s": None,
        "website": None,
        "Modified_Time": created,
        "$next_shift": None,
        "mobile": None,
        "last_name": user["last_name"],
        "time_zone": state.data["org"]["time_zone"],
        "number_separator": "Comma",
        "confirm": True,
        "date_format": "MMM d, yyyy",
    }


def render_org(state: SandboxState) -> dict[str, Any]:
    """The org as `GET /org` shows it: the stored settings plus ``created_time`` in the org's
    zone (reference §3.3)."""
    org = dict(state.data["org"])
    org["created_time"] = state.show(ORG_CREATED)
    org["license_details"] = dict(org.get("license_details") or {})
    org["hierarchy_preferences"] = dict(org.get("hierarchy_preferences") or {})
    return org


def render_module(name: str) -> dict[str, Any]:
    """A standard module as `GET /settings/modules` lists it, with every key of Zoho's
    sample (modules-api page): never modified, visible to both profiles."""
    singular = name[:-1]
    return {
        "has_more_profiles": False,
        "access_type": "org_based",
        "private_profile": None,
        "deletable": False,
        "description": None,
        "creatable": True,
        "recycle_bin_on_delete": True,
        "modified_time": None,
        "plural_label": name,
        "presence_sub_menu": False,
        "actual_plural_label": name,
        "id": MODULE_IDS[name],
        "visibility": 1,
        "convertable": name == "Leads",
        "sub_menu_available": True,
        "editable": True,
        "actual_singular_label": singular,
        "profiles": [{"name": n, "id": i} for n, i in PROFILES],
        "show_as_tab": True,
        "web_link": None,
        "singular_label": singular,
        "viewable": True,
        "api_supported": True,
        "api_name": name,
        "quick_create": True,
        "modified_by": None,
        "generated_type": "default",
        "feeds_required": False,
        "arguments": [],
        "module_name": name,
        "profile_count": len(PROFILES),
        "business_card_field_limit": 5,
        "parent_module": {},
        "status": "visible",
    }


def _batch_items(body: Any) -> list[Any]:
    """The ``data`` array of a record write, refused as Zoho refuses a malformed body."""
    if not isinstance(body, dict):
        raise QueryError(
            "INVALID_DATA", "body is not a valid JSON", {"expected_data_type": "jsonobject"}
        )
    items = body.get("data")
    if items is None:
        raise QueryError(
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "data"},
        )
    if not isinstance(items, list) or not items:
        raise QueryError(
            "INVALID_DATA",
            "invalid data",
            {"api_name": "data", "expected_data_type": "jsonarray"},
        )
    return items


def _check_batch_options(body: dict[str, Any], items: list[Any]) -> None:
    """Refuse a batch over Zoho's per-call record limit or with a malformed ``trigger``."""
    if len(items) > MAX_RECORDS_PER_CALL:
        raise QueryError(
            "LIMIT_EXCEEDED",
            "the number of records exceeds the limit",
            {"limit": MAX_RECORDS_PER_CALL},
        )
    _optional_array(body, "trigger")


def _optional_array(body: dict[str, Any], key: str) -> Any:
    """``body[key]`` when absent or a JSON array; anything else is Zoho's INVALID_DATA."""
    value = body.get(key)
    if value is not None and not isinstance(value, list):
        raise QueryError(
            "INVALID_DATA", "invalid data", {"api_name": key, "expected_data_type": "jsonarray"}
        )
    return value


def _upsert_duplicate_check(state: SandboxState, module: str, body: dict[str, Any]) -> list[str]:
    """The fields an upsert matches existing records on, in the order it tries them."""
    given = _optional_array(body, "duplicate_check_fields")
    try:
        return resolve_duplicate_check(state, module, given)
    except DuplicateCheckError as error:
        raise QueryError(
            "INVALID_DATA",
            "invalid data",
            {
                "api_name": error.api_name,
                "json_path": f"$.duplicate_check_fields[{error.index}]",
            },
        ) from error


def crm_blueprint(state: SandboxState) -> Blueprint:
    bp = Blueprint("sandbox_crm", __name__, url_prefix="/crm/v8")

    def _publish(module: str, operation: str, ids: list[str], affected: dict | None = None) -> None:
        if ids and state.notifier is not None:
            state.notifier.publish(module, operation, ids, affected or {})

    # ------------------------------------------------------------------- reads
    @bp.get("/<module>")
    @crm_call(state, None, "READ")
    def list_(module: str) -> Response:
        try:
            ims = parse_header_instant(
                request.headers.get("If-Modified-Since"), "If-Modified-Since"
            )
            with state.lock:
                result = list_records(state, module, request.args.to_dict(), ims, g.sandbox_user_id)
        except QueryError as error:
            return _query_error(error)
        if result.body is None:
            return empty(result.status)
        return json_response(result.body, result.status)

    @bp.get("/<module>/<record_id>")
    @crm_call(state, None, "READ")
    def get_one(module: str, record_id: str) -> Response:
        with state.lock:
            record = state.data["records"][module].get(record_id)
            if record is None:
                return zoho_error(
                    "INVALID_DATA", "the id given seems to be invalid", {"resource_path_index": 1}
                )
            return json_response({"data": [render_full_record(state, module, record)]})

    @bp.get("/<module>/deleted")
    @crm_call(state, None, "READ")
    def deleted(module: str) -> Response:
        try:
            ims = parse_header_instant(
                request.headers.get("If-Modified-Since"), "If-Modified-Since"
            )
            with state.lock:
                result = list_deleted(state, module, request.args.to_dict(), ims)
        except QueryError as error:
            return _query_error(error)
        if result.body is None:
            return empty(result.status)
        return json_response(result.body)

    @bp.get("/<module>/search")
    @crm_call(state, None, "READ")
    def search(module: str) -> Response:
        try:
            with state.lock:
                body = search_records(state, module, request.args.to_dict())
        except QueryError as error:
            return _query_error(error)
        if body is None:
            return empty(204)
        return json_response(body)

    @bp.get("/<module>/actions/count")
    @crm_call(state, None, "READ")
    def count(module: str) -> Response:
        converted = (request.args.get("converted") or "false").lower()
        with state.lock:
            records = state.data["records"][module].values()
            total = sum(
                1
                for r in records
                if converted == "both" or is_converted(r) == (converted == "true")
            )
        return json_response({"count": total})

    # ------------------------------------------------------------------ writes
    def _write(module: str, action: str, record_id: str | None = None) -> Response:
        # Zoho reads the body as JSON whatever its Content-Type; the official SDK sends
        # record writes with none.
        body = request.get_json(silent=True, force=True)
        try:
            items = _batch_items(body)
            g.sandbox_record_count = len(items)
            _check_batch_options(body, items)
            if record_id is not None:
                items = [{**items[0], "id": record_id}] if isinstance(items[0], dict) else items[:1]
            ius = None
            if action != "insert":
                ius = parse_header_instant(
                    request.headers.get("If-Unmodified-Since"), "If-Unmodified-Since"
                )
        except QueryError as error:
            return _query_error(error)
        with state.lock:
            duplicate_check = None
            if action == "upsert":
                try:
                    duplicate_check = _upsert_duplicate_check(state, module, body)
                except QueryError as error:
                    return _query_error(error)
            outcome = apply_batch(
                state,
                module,
                action,
                items,
                g.sandbox_user_id,
                duplicate_check=duplicate_check,
                if_unmodified_since=ius,
                refuse=take_record_failures(state),
            )
            _publish(module, "insert", outcome.inserted, outcome.affected)
            _publish(module, "update", outcome.updated, outcome.affected)
            state.save()
        # Insert: 201 for one record, 202 for several (Zoho's status table, reference §4.4).
        # Update and upsert answer 200 (recorded upsert answers, reference §2.6).
        success = 200 if action != "insert" else (201 if len(items) == 1 else 202)
        return json_response({"data": outcome.results}, batch_status(outcome.results, success))

    @bp.post("/<module>")
    @crm_call(state, None, "CREATE")
    def insert(module: str) -> Response:
        return _write(module, "insert")

    @bp.put("/<module>")
    @crm_call(state, None, "UPDATE")
    def update(module: str) -> Response:
        return _write(module, "update")

    @bp.put("/<module>/<record_id>")
    @crm_call(state, None, "UPDATE")
    def update_one(module: str, record_id: str) -> Response:
        return _write(module, "update", record_id)

    @bp.post("/<module>/upsert")
    @crm_call(state, None, "CREATE")
    def upsert(module: str) -> Response:
        return _write(module, "upsert")

    def _delete(module: str, ids: list[str]) -> Response:
        g.sandbox_record_count = len(ids)
        wf_trigger = request.args.get("wf_trigger", "true").lower()
        if wf_trigger not in ("true", "false"):
            return zoho_error(
                "INVALID_DATA",
                "invalid data",
                {"param_name": "wf_trigger", "expected_data_type": "boolean"},
            )
        with state.lock:
            results, deleted_ids = delete_records(
                state, module, ids, g.sandbox_user_id, refuse=take_record_failures(state)
            )
            _publish(module, "delete", deleted_ids)
            state.save()
        return json_response({"data": results}, batch_status(results, 200))

    @bp.delete("/<module>")
    @crm_call(state, None, "DELETE")
    def delete(module: str) -> Response:
        ids = [part.strip() for part in request.args.get("ids", "").split(",") if part.strip()]
        if not ids:
            return zoho_error(
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "ids"},
            )
        if len(ids) > MAX_RECORDS_PER_CALL:
            return zoho_error(
                "LIMIT_EXCEEDED",
                "the number of ids exceeds the limit",
                {"limit": MAX_RECORDS_PER_CALL, "param_name": "ids"},
            )
        return _delete(module, ids)

    @bp.delete("/<module>/<record_id>")
    @crm_call(state, None, "DELETE")
    def delete_one(module: str, record_id: str) -> Response:
        return _delete(module, [record_id])

    @bp.post("/<module>/<record_id>/actions/convert")
    @crm_call(state, None, "CREATE")
    def convert(module: str, record_id: str) -> Response:
        """Convert a lead (convert-lead page): the body's ``data[0]`` may name an existing
        Contact or Account and hold a Deal to create; the answer names all three."""
        if module != "Leads":
            return zoho_error("INVALID_MODULE", "the module name given seems to be invalid")
        g.sandbox_record_count = 1
        body = request.get_json(silent=True, force=True)
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            return zoho_error(
                "INVALID_DATA", "invalid data", {"api_name": "data", "json_path": "$.data"}
            )
        with state.lock:
            try:
                outcome = convert_lead(state, record_id, g.sandbox_user_id, items[0])
            except LeadConversionError as error:
                return zoho_error(error.code, error.message, error.details, error.status)
            publish_conversion(state, record_id, outcome)
            state.save()
        element = {
            "code": "SUCCESS",
            "details": outcome,
            "message": "The record has been converted successfully",
            "status": "success",
        }
        return json_response({"data": [element]})

    # -------------------------------------------------------------------- COQL
    @bp.post("/coql")
    @crm_call(state, ("coql",), "READ")
    def coql() -> Response:
        """A COQL select (coql.py); the module's own scope is needed as well as coql's."""
        try:
            with state.lock:
                parser = parser_for(state, request.get_json(silent=True))
                try:
                    query = parser.parse()
                finally:
                    g.sandbox_coql_limit = parser.limit_asked
                needed = ("modules", query.module.lower())
                if not tokens.scope_allows(g.sandbox_scopes, needed, "READ"):
                    return zoho_error("OAUTH_SCOPE_MISMATCH", "Unauthorized", status=401)
                body = run_query(state, query)
        except QueryError as error:
            return _query_error(error)
        if body is None:
            return empty(204)
        return json_response(body)

    @bp.post("/<module>/<record_id>/actions/merge")
    @crm_call(state, None, "UPDATE")
    def merge(module: str, record_id: str) -> Response:
        """Merge up to two child records into this master (docs/zoho-api-notes.md)."""
        body = request.get_json(silent=True, force=True)
        with state.lock:
            try:
                element, deleted_ids = merge_records(
                    state, module, record_id, body, g.sandbox_user_id
                )
            except QueryError as error:
                return _query_error(error)
            _publish(module, "delete", deleted_ids)
            _publish(module, "update", [record_id])
            state.save()
        return json_response({"merge": [element]}, 201)

    @bp.get("/<module>/<record_id>/actions/merge")
    @crm_call(state, None, "READ")
    def merge_status(module: str, record_id: str) -> Response:
        """No merge job is ever scheduled here (every merge completes at once): 204."""
        return empty(204)

    # ---------------------------------------------------------------- metadata
    def _module_param() -> str | Response:
        module = request.args.get("module")
        if not module:
            return zoho_error(
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "module"},
            )
        if module not in MODULES:
            return zoho_error(
                "INVALID_MODULE",
                "the module name given seems to be invalid",
                {"param_name": "module"},
            )
        return module

    @bp.post("/settings/recycle_bin/<record_id>/actions/restore")
    @crm_call(state, ("settings", "recycle_bin"), "UPDATE")
    def restore_from_bin(record_id: str) -> Response:
        """One record back from the recycle bin; no body (docs/zoho-api-notes.md). The
        answer is wrapped in ``recycle_bin`` as the OAS's recycle-bin actions answer."""
        with state.lock:
            element, module = restore_from_recycle_bin(state, record_id)
            if module is not None:
                state.save()
        return json_response({"recycle_bin": [element]}, 200 if module else 400)

    @bp.get("/settings/fields")
    @crm_call(state, ("settings", "fields"), "READ")
    def fields() -> Response:
        module = _module_param()
        if isinstance(module, Response):
            return module
        with state.lock:
            return json_response({"fields": [s.metadata(module) for s in state.fields(module)]})

    @bp.get("/settings/fields/<field_id>")
    @crm_call(state, ("settings", "fields"), "READ")
    def field(field_id: str) -> Response:
        module = _module_param()
        if isinstance(module, Response):
            return module
        with state.lock:
            for spec in state.fields(module):
                if spec.field_id == field_id:
                    return json_response({"fields": [spec.metadata(module)]})
        return zoho_error(
            "INVALID_DATA", "the id given seems to be invalid", {"resource_path_index": 2}
        )

    @bp.get("/settings/modules")
    @crm_call(state, ("settings", "modules"), "READ")
    def modules() -> Response:
        listed = [render_module(name) for name in MODULES]
        return json_response({"modules": listed})

    @bp.get("/org")
    @crm_call(state, ("org",), "READ")
    def org() -> Response:
        with state.lock:
            return json_response({"org": [render_org(state)]})

    @bp.get("/users")
    @crm_call(state, ("users",), "READ")
    def users() -> Response:
        kind = request.args.get("type", "AllUsers")
        if kind not in USER_TYPES:
            return zoho_error("INVALID_DATA", "invalid data", {"param_name": "type"})
        with state.lock:
            if kind == "CurrentUser":
                chosen = [state.user(g.sandbox_user_id)]
            elif kind in ("DeactiveUsers", "NotConfirmedUsers", "DeletedUsers"):
                chosen = []
            elif kind in ("AdminUsers", "ActiveConfirmedAdmins"):
                chosen = [u for u in state.data["users"] if u["profile"]["name"] == "Administrator"]
            else:
                chosen = list(state.data["users"])
            rendered = [render_user(state, u) for u in chosen if u is not None]
        if not rendered:
            return empty(204)
        info = {"per_page": 200, "count": len(rendered), "page": 1, "more_records": False}
        return json_response({"users": rendered, "info": info})

    return bp
