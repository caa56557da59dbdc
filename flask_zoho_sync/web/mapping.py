"""The mapping editor's pages and actions.

With htmx each action answers with the section it changed (plus the problems summary,
swapped out of band), so the admin keeps their place; without JavaScript each action
redirects back to the page, or re-renders it with the refusal next to the form.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..dbids import row_by_id
from ..models import FieldMap
from ..preferences import (
    add_default_mappings,
    get_settings,
    mapping_carries_data,
    refresh_zoho_fields,
)
from ..signals import field_resumed
from ..state import ZohoSyncState
from ..sync.mapping import default_field_mappings
from ..sync.modes import OVERWRITE_LABELS
from ..zoho.errors import ZohoError
from ._htmx import is_htmx
from .blueprint import bp, notify_preferences_changed, sync_state
from .mapping_editor import (
    DIRECTION_LABELS,
    KINDS,
    POLICY_LABELS,
    SYSTEM_HELP,
    SYSTEM_LABELS,
    Editor,
    Kind,
    Refused,
    add_row,
    change_row,
    load_editor,
)
from .messages import tell
from .rendering import render_zoho_error
from .words import plural

SECTION_IDS = {"field": "zs-map-fields", "system": "zs-map-system", "group": "zs-map-groups"}


def _editor(state: ZohoSyncState) -> Editor:
    return load_editor(state.db.session, state.adapter)


def _proposed_pairs(state: ZohoSyncState, editor: Editor) -> list[tuple[str, str]]:
    """The standard pairs to offer in one click while the saved mapping carries no data
    (``preferences.mapping_carries_data``): until then no sync runs at all."""
    if editor.module is None or mapping_carries_data(state.db.session, state.adapter):
        return []
    host_fields = state.adapter.fields()
    labels = {field.name: field.label for field in host_fields}
    pairs = default_field_mappings(editor.module, host_fields)  # type: ignore[arg-type]
    shown = []
    for pair in pairs:
        zoho = editor.zoho_field(pair.zoho_field)
        zoho_label = f"{zoho.label} ({zoho.api_name})" if zoho else pair.zoho_field
        shown.append((labels.get(pair.host_field, pair.host_field), zoho_label))
    return shown


def _context(state: ZohoSyncState, editor: Editor) -> dict[str, Any]:
    return {
        "proposed_pairs": _proposed_pairs(state, editor),
        "editor": editor,
        "directions": DIRECTION_LABELS,
        "policies": POLICY_LABELS,
        "overwrites": OVERWRITE_LABELS,
        "system_labels": SYSTEM_LABELS,
        "system_help": SYSTEM_HELP,
        "section_ids": SECTION_IDS,
    }


def _answer(
    state: ZohoSyncState,
    kind: Kind,
    message: tuple[str, str],
    refused: bool,
    *,
    form_key: str | None = None,
    refusal: Exception | None = None,
) -> ResponseReturnValue:
    """The section after an edit (htmx), or the page (refused, no JS), or a redirect.

    A refused form comes back as the admin left it, with the field at fault marked.
    """
    if not refused:
        notify_preferences_changed(state)
    editor = _editor(state)
    editor.messages[kind] = message
    if refused and form_key is not None:
        editor.typed[form_key] = {
            name: value for name, value in request.form.items() if name != "csrf_token"
        }
        editor.invalid[form_key] = getattr(refusal, "field", "zoho_field")
    if is_htmx():
        return render_template(
            "zoho_sync/_mapping_section.html", kind=kind, **_context(state, editor)
        )
    if refused:
        return render_template("zoho_sync/mapping.html", **_context(state, editor)), 400
    tell(message[1], message[0])
    return redirect(url_for("zoho_sync.mapping") + "#" + SECTION_IDS[kind])


def _kind(value: str) -> Kind:
    if value not in KINDS:
        abort(404)
    return value  # type: ignore[return-value]


def _outcome(verb: str, warnings: list[str]) -> tuple[str, str]:
    if warnings:
        return ("warning", f"{verb}, with a warning: {'; '.join(warnings)}")
    return ("success", f"{verb}.")


@bp.get("/mapping")
def mapping() -> ResponseReturnValue:
    state = sync_state()
    editor = _editor(state)
    if is_htmx() and request.headers.get("HX-Target") == "zs-mapping":
        return render_template("zoho_sync/_mapping_body.html", **_context(state, editor))
    return render_template("zoho_sync/mapping.html", **_context(state, editor))


@bp.post("/mapping/<kind>/add")
def mapping_add(kind: str) -> ResponseReturnValue:
    section = _kind(kind)
    state = sync_state()
    session = state.db.session
    try:
        warnings = add_row(session, _editor(state), section, request.form)
    except Refused as refusal:
        session.rollback()
        return _answer(
            state,
            section,
            ("error", f"Not added: {refusal}"),
            refused=True,
            form_key=section,
            refusal=refusal,
        )
    return _answer(state, section, _outcome("Added", warnings), refused=False)


def _stored_row(state: ZohoSyncState, row_id: int) -> FieldMap:
    row = row_by_id(state.db.session, FieldMap, row_id)
    if row is None:
        abort(404)
    return row


@bp.post("/mapping/rows/<zoho_sync_id:row_id>")
def mapping_change(row_id: int) -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    row = _stored_row(state, row_id)
    kind = _kind(row.kind)
    was_paused = row.paused_reason is not None
    try:
        warnings = change_row(session, _editor(state), row, request.form)
    except Refused as refusal:
        session.rollback()
        return _answer(
            state,
            kind,
            ("error", f"Not changed: {refusal}"),
            refused=True,
            form_key=f"row-{row.id}",
            refusal=refusal,
        )
    if was_paused and row.paused_reason is None:
        field_resumed(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            module=get_settings(session).module or "",
            zoho_field=row.zoho_field,
            host_field=row.host_key,
        )
    return _answer(state, kind, _outcome("Changed", warnings), refused=False)


@bp.post("/mapping/rows/<zoho_sync_id:row_id>/remove")
def mapping_remove(row_id: int) -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    row = _stored_row(state, row_id)
    kind = _kind(row.kind)
    shown = next(item for item in _editor(state).rows_of(kind) if item.record.id == row.id)
    if request.form.get("confirm") != "1":
        # Without JavaScript there is no hx-confirm dialog: the admin confirms on a page.
        return render_template("zoho_sync/mapping_remove.html", row=shown, section=kind)
    described = f"{shown.host_label} ↔ {shown.zoho_label}"
    session.delete(row)
    session.commit()
    return _answer(state, kind, ("success", f"Removed {described}."), refused=False)


def _answer_page(
    state: ZohoSyncState, level: str, message: str, status: int = 200
) -> ResponseReturnValue:
    """The whole editor after a page-wide action (defaults, refresh)."""
    if is_htmx():
        editor = _editor(state)
        editor.messages["page"] = (level, message)
        return render_template("zoho_sync/_mapping_body.html", **_context(state, editor))
    if status >= 400:
        editor = _editor(state)
        editor.messages["page"] = (level, message)
        return render_template("zoho_sync/mapping.html", **_context(state, editor)), status
    tell(message, level)
    return redirect(url_for("zoho_sync.mapping"))


@bp.post("/mapping/defaults")
def mapping_defaults() -> ResponseReturnValue:
    """Map the module's standard fields and whatever matches by name (existing rows are kept)."""
    state = sync_state()
    session = state.db.session
    editor = _editor(state)
    if editor.module is None:
        return _answer_page(state, "error", "Choose Leads or Contacts in the settings first.", 400)
    added = add_default_mappings(session, state.adapter, editor.module)
    session.commit()
    notify_preferences_changed(state)
    if not added:
        return _answer_page(
            state, "info", "Every standard field and every match by name is mapped already."
        )
    return _answer_page(
        state,
        "success",
        f"Added {plural(added, 'mapping')}: the standard fields and the fields, groups and system "
        "fields whose names match. Check them below.",
    )


@bp.post("/mapping/refresh")
def mapping_refresh() -> ResponseReturnValue:
    """Fetch the module's fields from Zoho (one API call) and cache them for the editor."""
    state = sync_state()
    session = state.db.session
    editor = _editor(state)
    if editor.module is None:
        return _answer_page(state, "error", "Choose Leads or Contacts in the settings first.", 400)
    if editor.account is None:
        return _answer_page(
            state, "error", "Connect Zoho CRM first: the fields come from Zoho.", 400
        )
    try:
        fields = refresh_zoho_fields(session, state.client(), editor.settings)
        session.commit()
    except ZohoError as exc:
        session.rollback()
        return render_zoho_error(exc)
    finally:
        state.record_usage(session)
    return _answer_page(
        state, "success", f"Loaded {plural(len(fields), f'{editor.module} field')} from Zoho."
    )
