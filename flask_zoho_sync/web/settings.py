"""The settings page: module, time zone, automatic sync and the default conflict policy.

Nothing is saved unless the whole form is valid, so a typo in one field never leaves the
sync half-configured. Switching module forgets the links to the other module's records
(the ids mean nothing in the new module), which is why it needs an explicit confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import sqlalchemy as sa
from flask import make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from ..config import canonical_time_zone, canonical_time_zones, validate_time_zone
from ..connection import ConnectedAccount, describe_connection
from ..errors import ConfigurationError
from ..jobs import SyncBusy, settings_lock
from ..models import Link, SyncSettings
from ..preferences import MODULES, get_settings, switch_module
from ..sync.mapping import ConflictPolicy
from ._htmx import announce_change, is_htmx
from .blueprint import bp, notify_preferences_changed, sync_state
from .messages import tell
from .words import plural

DEFAULT_TIME_ZONE = "UTC"
POLICY_LABELS = {
    ConflictPolicy.NEWEST.value: "The newest change wins",
    ConflictPolicy.HOST_WINS.value: "This site wins",
    ConflictPolicy.ZOHO_WINS.value: "Zoho wins",
}


@cache
def time_zones() -> tuple[str, ...]:
    """The zones the form offers: places only (no "Factory", "localtime" or old aliases)."""
    return tuple(sorted(canonical_time_zones()))


@dataclass
class SettingsForm:
    """What the form shows: stored values on GET, the submitted ones after a refusal."""

    module: str | None
    time_zone: str
    auto_sync: bool
    conflict_policy: str
    errors: dict[str, str] = field(default_factory=dict)
    #: Links to other modules' records, by module, when a switch awaits confirmation.
    relink: dict[str, int] = field(default_factory=dict)
    zone_suggested: bool = False

    @classmethod
    def from_settings(
        cls, settings: SyncSettings, account: ConnectedAccount | None
    ) -> SettingsForm:
        form = cls(
            module=settings.module,
            # A zone saved under an old alias is shown (and saved) under its canonical name.
            time_zone=canonical_time_zone(settings.time_zone)
            or settings.time_zone
            or DEFAULT_TIME_ZONE,
            auto_sync=bool(settings.auto_sync),
            conflict_policy=settings.conflict_policy or ConflictPolicy.NEWEST.value,
        )
        # "Still the default": never saved from this form (no module yet) and UTC. Then the
        # org's zone is the better guess, but it is only suggested until the admin saves.
        # Zoho may still report an old alias ("Asia/Calcutta"); suggest what it stands for.
        org_zone = canonical_time_zone(account.org_time_zone) if account else None
        if (
            org_zone in time_zones()
            and settings.module is None
            and form.time_zone == DEFAULT_TIME_ZONE
            and org_zone != DEFAULT_TIME_ZONE
        ):
            form.time_zone = org_zone  # type: ignore[assignment]
            form.zone_suggested = True
        return form

    @classmethod
    def from_request(cls) -> SettingsForm:
        form = cls(
            module=request.form.get("module") or None,
            time_zone=request.form.get("time_zone", "").strip(),
            auto_sync=request.form.get("auto_sync") in ("on", "true", "1"),
            conflict_policy=request.form.get("conflict_policy", ""),
        )
        if form.module not in MODULES:
            form.errors["module"] = "Choose Leads or Contacts."
        try:
            validate_time_zone(form.time_zone)
        except ConfigurationError as exc:
            form.errors["time_zone"] = f"{exc} Pick one from the list."
        if form.conflict_policy not in POLICY_LABELS:
            form.errors["conflict_policy"] = "Choose who wins when both sides changed a field."
        return form


def links_elsewhere(session: Session, module: str) -> dict[str, int]:
    """How many contacts are linked to records of modules other than ``module``."""
    rows = session.execute(
        sa.select(Link.module, sa.func.count())
        .where(Link.module != module)
        .group_by(Link.module)
        .order_by(Link.module)
    ).all()
    return {name: int(count) for name, count in rows}


def _render(
    form: SettingsForm,
    account: ConnectedAccount | None,
    status: int,
    notice: str | None = None,
) -> ResponseReturnValue:
    context = {
        "form": form,
        "notice": notice,
        "account": account,
        "modules": MODULES,
        "time_zones": time_zones(),
        "policies": POLICY_LABELS,
    }
    if is_htmx():
        # htmx swaps only 2xx answers in place; the message is in the fragment itself.
        return render_template("zoho_sync/_settings_form.html", **context)
    return render_template("zoho_sync/settings.html", **context), status


def _store(stored: SyncSettings, form: SettingsForm) -> None:
    stored.time_zone = form.time_zone
    stored.auto_sync = form.auto_sync
    stored.conflict_policy = form.conflict_policy


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    account = describe_connection(session)
    stored = get_settings(session)
    if request.method == "GET":
        return _render(SettingsForm.from_settings(stored, account), account, 200)

    form = SettingsForm.from_request()
    if form.errors:
        session.rollback()
        return _render(form, account, 400)
    assert form.module is not None
    if form.module == stored.module:
        _store(stored, form)
        session.commit()
        forgotten = 0
    else:
        # Forgetting links under a running sync would have it write to the old module's
        # records, then stop on links deleted beneath it: the switch waits for the run lock.
        session.rollback()  # hold no database lock while waiting for a running sync
        try:
            with settings_lock(state):
                stored = get_settings(session)
                elsewhere = links_elsewhere(session, form.module)
                if elsewhere and request.form.get("confirm_relink") != "yes":
                    form.relink = elsewhere
                    session.rollback()
                    return _render(form, account, 409)
                forgotten = switch_module(session, stored, form.module)
                _store(stored, form)
                session.commit()
        except SyncBusy:
            session.rollback()
            form.errors["module"] = (
                "A sync is running; try again when it finishes. Nothing was saved."
            )
            return _render(form, account, 409)
    notify_preferences_changed(state)
    message = "Settings saved."
    if forgotten:
        message += (
            f" {plural(forgotten, 'link was', 'links were')} forgotten; contacts are matched "
            "by email on the next sync."
        )
    if is_htmx():
        answer = make_response(
            _render(SettingsForm.from_settings(stored, account), account, 200, notice=message)
        )
        return announce_change(answer)
    tell(message, "success")
    return redirect(url_for("zoho_sync.settings"))
