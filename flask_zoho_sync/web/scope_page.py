"""The "What syncs" page: the host scope (groups, a filter the app named), the Zoho scope
(conditions sent to Zoho as criteria), what leaving the scope does, the first sync's match
key, and the records a first sync found ambiguous and left unlinked.

It saves through ``scope.save_scope``, the CLI's ``settings --scope-*`` rules, so both faces
accept and refuse the same things. htmx swaps the form in place; without JavaScript it
posts and the page is rendered again.
"""

from __future__ import annotations

from flask import current_app, render_template, request
from flask.typing import ResponseReturnValue

from ..preferences import get_settings
from ..scope import read_scope, save_scope, unmatched_records
from ..sync.scope import ON_LEAVE, ScopeRefused, zoho_scope_text
from ._htmx import is_htmx
from .blueprint import bp, sync_state


def _render(error: str | None = None, notice: str | None = None) -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    context = {
        "scope": read_scope(session, current_app.config),
        "zoho_text": "",
        "groups": state.adapter.groups(),
        "filters": state.adapter.scope_filters(),
        "fields": [field.name for field in state.adapter.fields()],
        "on_leave_choices": ON_LEAVE,
        "unmatched": unmatched_records(session),
        "error": error,
        "notice": notice,
    }
    context["zoho_text"] = zoho_scope_text(context["scope"].zoho)  # type: ignore[attr-defined]
    template = "zoho_sync/_scope_form.html" if is_htmx() else "zoho_sync/scope.html"
    status = 422 if error else 200
    return render_template(template, **context), status


@bp.get("/scope")
def scope() -> ResponseReturnValue:
    return _render()


@bp.post("/scope")
def scope_save() -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    form = request.form
    match_key = form.get("match_key", "email")
    if match_key == "field":
        match_key = "field:" + form.get("match_field", "")
    try:
        changed = save_scope(
            session,
            get_settings(session),
            state.adapter,
            current_app.config,
            host_groups=form.getlist("host_groups"),
            host_filter=form.get("host_filter", ""),
            zoho_conditions=form.get("zoho_conditions", ""),
            on_leave=form.get("on_leave", "unlink"),
            match_key=match_key,
        )
    except ScopeRefused as exc:
        session.rollback()
        return _render(error=f"Nothing was saved: {exc}")
    session.commit()
    state.preferences_changed()
    notice = (
        "Saved. The next sync reads everything again, to apply the new scope."
        if changed
        else "Saved; nothing changed."
    )
    return _render(notice=notice)
