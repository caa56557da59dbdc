"""A small human UI: see the sandbox's Leads and Contacts and edit them as a Zoho user.

The demo needs a way to show "someone changed this in Zoho" without real Zoho. Edits here
go through the same write rules as the API, cost no credits, stamp the chosen user in
``Modified_By`` and fire notifications, so the sync sees them exactly as remote edits.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from markupsafe import escape

from .fields import MODULES, FieldSpec
from .merging import merge_records
from .query import QueryError
from .records import (
    LeadConversionError,
    apply_batch,
    convert_lead,
    delete_records,
    publish_conversion,
    render_record,
)
from .state import SALES_REP_ID, SandboxState

#: Standard fields worth a form input; custom fields are always shown.
_FORM_FIELDS = {
    "Leads": [
        "Salutation",
        "First_Name",
        "Last_Name",
        "Email",
        "Phone",
        "Mobile",
        "Company",
        "Designation",
        "City",
        "Lead_Status",
        "Lead_Source",
        "Email_Opt_Out",
        "Description",
    ],
    "Contacts": [
        "Salutation",
        "First_Name",
        "Last_Name",
        "Email",
        "Phone",
        "Mobile",
        "Title",
        "Department",
        "Mailing_City",
        "Date_of_Birth",
        "Lead_Source",
        "Email_Opt_Out",
        "Description",
    ],
}
_FORM_TYPES = {
    "text",
    "textarea",
    "email",
    "phone",
    "website",
    "picklist",
    "boolean",
    "integer",
    "bigint",
    "double",
    "currency",
    "date",
    "datetime",
}


def _form_specs(state: SandboxState, module: str) -> list[FieldSpec]:
    specs = state.field_map(module)
    chosen = [specs[name] for name in _FORM_FIELDS[module] if name in specs]
    chosen += [s for s in specs.values() if s.custom_field and s.data_type in _FORM_TYPES]
    return chosen


def _parse_form(specs: list[FieldSpec]) -> dict[str, Any]:
    """Turn form strings into the JSON types the write path expects."""
    booleans = set(request.form.getlist("__bool"))
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.api_name in booleans:
            values[spec.api_name] = request.form.get(spec.api_name) == "true"
            continue
        raw = request.form.get(spec.api_name)
        if raw is None:
            continue
        raw = raw.strip()
        if raw == "":
            values[spec.api_name] = None
        elif spec.data_type in ("integer", "bigint") and raw.lstrip("-").isdigit():
            values[spec.api_name] = int(raw)
        elif spec.data_type in ("double", "currency"):
            try:
                values[spec.api_name] = float(raw)
            except ValueError:
                values[spec.api_name] = raw
        else:
            values[spec.api_name] = raw
    return values


def _describe(result: dict[str, Any]) -> str:
    details = result.get("details") or {}
    if result["code"] == "MULTIPLE_OR_MULTI_ERRORS":
        return "; ".join(_describe(e) for e in details.get("errors", []))
    parts = [result["code"], result.get("message", "")]
    if details.get("api_name"):
        parts.append(f"field {details['api_name']}")
    if details.get("expected_data_type"):
        parts.append(f"expected {details['expected_data_type']}")
    if details.get("maximum_length"):
        parts.append(f"max length {details['maximum_length']}")
    return " - ".join(p for p in parts if p)


def ui_blueprint(state: SandboxState) -> Blueprint:
    bp = Blueprint("sandbox_ui", __name__)

    def _check(module: str) -> None:
        if module not in MODULES:
            abort(404)

    def _publish(module: str, operation: str, ids: list[str], affected: dict | None = None) -> None:
        if ids and state.notifier is not None:
            state.notifier.publish(module, operation, ids, affected or {})

    @bp.get("/")
    def index() -> str:
        with state.lock:
            modules = []
            for module in MODULES:
                records = sorted(
                    state.data["records"][module].values(),
                    key=lambda r: (r["Modified_Time"], r["id"]),
                    reverse=True,
                )
                modules.append((module, [render_record(state, module, r) for r in records]))
            org = dict(state.data["org"])
            now = state.show_now()
        return render_template("index.html", modules=modules, org=org, now=now, stats=state.stats())

    def _form(
        module: str, record_id: str | None, values: dict[str, Any], error: str | None, acting: str
    ) -> str:
        return render_template(
            "record_form.html",
            module=module,
            record_id=record_id,
            values=values,
            error=error,
            specs=_form_specs(state, module),
            users=state.data["users"],
            acting=acting,
        )

    @bp.route("/ui/<module>/new", methods=["GET", "POST"])
    def new_record(module: str) -> Response | str:
        _check(module)
        if request.method == "GET":
            return _form(module, None, {}, None, SALES_REP_ID)
        user_id = request.form.get("__user") or SALES_REP_ID
        values = _parse_form(_form_specs(state, module))
        with state.lock:
            outcome = apply_batch(state, module, "insert", [values], user_id)
            _publish(module, "insert", outcome.inserted, outcome.affected)
            state.save()
        result = outcome.results[0]
        if result["status"] != "success":
            return _form(module, None, request.form.to_dict(), _describe(result), user_id)
        return redirect(url_for("sandbox_ui.index"))

    @bp.route("/ui/<module>/<record_id>/edit", methods=["GET", "POST"])
    def edit_record(module: str, record_id: str) -> Response | str:
        _check(module)
        with state.lock:
            record = state.data["records"][module].get(record_id)
            if record is None:
                abort(404)
            current = render_record(state, module, record)
        if request.method == "GET":
            return _form(module, record_id, current, None, SALES_REP_ID)
        user_id = request.form.get("__user") or SALES_REP_ID
        values = _parse_form(_form_specs(state, module))
        with state.lock:
            outcome = apply_batch(state, module, "update", [{**values, "id": record_id}], user_id)
            _publish(module, "update", outcome.updated, outcome.affected)
            state.save()
        result = outcome.results[0]
        if result["status"] != "success":
            return _form(module, record_id, request.form.to_dict(), _describe(result), user_id)
        return redirect(url_for("sandbox_ui.index"))

    @bp.route("/crm/<org>/tab/<module>/<record_id>", methods=["GET", "POST"])
    def record_page(org: str, module: str, record_id: str) -> Response | str:
        """The record at the address Zoho's web UI gives it
        (``crm.zoho.<dc>/crm/org<org id>/tab/<Module>/<record id>``), so a link built for
        Zoho opens the record here when the sandbox stands in for Zoho."""
        with state.lock:
            domain = state.data["org"].get("domain_name")
        if org != domain:
            abort(404)
        return edit_record(module, record_id)

    @bp.post("/ui/<module>/<record_id>/delete")
    def delete_record(module: str, record_id: str) -> Response:
        _check(module)
        with state.lock:
            _, deleted = delete_records(state, module, [record_id], SALES_REP_ID)
            _publish(module, "delete", deleted)
            state.save()
        return redirect(url_for("sandbox_ui.index"))

    @bp.post("/ui/Leads/<record_id>/convert")
    def convert(record_id: str) -> Response:
        """The lead page's Convert button: a Contact, and an Account from the Company."""
        with state.lock:
            try:
                outcome = convert_lead(state, record_id, SALES_REP_ID)
            except LeadConversionError:
                outcome = None  # converted meanwhile, or gone: the list shows which
            if outcome is not None:
                publish_conversion(state, record_id, outcome)
            state.save()
        return redirect(url_for("sandbox_ui.index"))

    @bp.post("/ui/<module>/<record_id>/merge")
    def merge(module: str, record_id: str) -> Response | tuple[str, int]:
        """Merge the chosen record into this one, as Zoho's Find and Merge does: the chosen
        record is deleted, this one keeps its values except the fields named."""
        _check(module)
        fields = [name.strip() for name in request.form.get("fields", "").split(",")]
        child = {
            "id": request.form.get("child", ""),
            "_fields": [{"api_name": f} for f in fields if f],
        }
        with state.lock:
            try:
                _, deleted = merge_records(
                    state, module, record_id, {"merge": [{"data": [child]}]}, SALES_REP_ID
                )
            except QueryError as error:
                return str(escape(f"Not merged: {error.code} {error.message} {error.details}")), 400
            _publish(module, "delete", deleted)
            _publish(module, "update", [record_id])
            state.save()
        return redirect(url_for("sandbox_ui.index"))

    return bp
