"""The settings page: module, time zone, automatic sync, the default conflict policy, and
who hears of incidents (alert emails and webhook).

Nothing is saved unless the whole form is valid, so a typo in one field never leaves the
sync half-configured. Switching module forgets the links to the other module's records
(the ids mean nothing in the new module), which is why it needs an explicit confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import sqlalchemy as sa
from flask import current_app, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from ..alerts import mail_transport
from ..config import (
    canonical_time_zone,
    canonical_time_zones,
    check_webhook_url,
    validate_time_zone,
)
from ..connection import ConnectedAccount, describe_connection
from ..errors import ConfigurationError
from ..incidents import alert_recipients, parse_emails, set_alert_recipients
from ..jobs import SyncBusy, settings_lock
from ..models import Incident, Link, SyncSettings
from ..preferences import MODULES, get_settings, set_sync_mode, switch_module
from ..state import ZohoSyncState
from ..sync.mapping import ConflictPolicy
from ..sync.modes import MODE_LABELS, SYNC_MODES
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
    #: The alert recipients as typed (None: the form did not send them; keep the stored).
    alert_emails: str | None = None
    alert_webhook: str | None = None
    #: The sync mode (``sync.modes``); None: not stored (ZOHO_SYNC_MODE applies), or not
    #: sent by the form (the stored one is kept).
    sync_mode: str | None = None

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
            sync_mode=settings.sync_mode,
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
            sync_mode=request.form.get("sync_mode"),
        )
        if form.sync_mode is not None and form.sync_mode not in SYNC_MODES:
            form.errors["sync_mode"] = "Choose one of the sync modes."
        if form.module not in MODULES:
            form.errors["module"] = "Choose Leads or Contacts."
        try:
            validate_time_zone(form.time_zone)
        except ConfigurationError as exc:
            form.errors["time_zone"] = f"{exc} Pick one from the list."
        if form.conflict_policy not in POLICY_LABELS:
            form.errors["conflict_policy"] = "Choose who wins when both sides changed a field."
        form._read_alerts()
        return form

    def _read_alerts(self) -> None:
        self.alert_emails = request.form.get("alert_emails")
        self.alert_webhook = request.form.get("alert_webhook")
        if self.alert_emails is not None:
            try:
                parse_emails(self.alert_emails, "Alert emails")
            except ConfigurationError as exc:
                self.errors["alert_emails"] = str(exc)
        if self.alert_webhook and self.alert_webhook.strip():
            try:
                check_webhook_url("Alert webhook", self.alert_webhook)
            except ConfigurationError as exc:
                self.errors["alert_webhook"] = str(exc)


def links_elsewhere(session: Session, module: str) -> dict[str, int]:
    """How many contacts are linked to records of modules other than ``module``."""
    rows = session.execute(
        sa.select(Link.module, sa.func.count())
        .where(Link.module != module)
        .group_by(Link.module)
        .order_by(Link.module)
    ).all()
    return {name: int(count) for name, count in rows}


def alerts_context(state: ZohoSyncState, form: SettingsForm) -> dict[str, object]:
    """The alerts fieldset: recipients (as typed after a refusal), and what stops them."""
    session = state.db.session
    stored = alert_recipients(session, state.config.operations)
    emails = form.alert_emails if form.alert_emails is not None else ", ".join(stored.emails)
    webhook = form.alert_webhook if form.alert_webhook is not None else stored.webhook_url
    _send, mail_problem = mail_transport(state, current_app._get_current_object())  # type: ignore[attr-defined]
    undelivered = session.scalars(
        sa.select(Incident.delivery_error)
        .where(Incident.delivery_error.is_not(None))
        .order_by(Incident.id.desc())
        .limit(1)
    ).first()
    return {
        "emails": emails,
        "webhook": webhook or "",
        "mail_problem": mail_problem if stored.emails else None,
        "signed": bool(state.config.operations.alert_webhook_secret),
        "undelivered": undelivered,
    }


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
        "sync_modes": MODE_LABELS,
        "default_mode": sync_state().config.sync_mode,
        "alerts": alerts_context(sync_state(), form),
    }
    if is_htmx():
        # htmx swaps only 2xx answers in place; the message is in the fragment itself.
        return render_template("zoho_sync/_settings_form.html", **context)
    return render_template("zoho_sync/settings.html", **context), status


def _store(stored: SyncSettings, form: SettingsForm, session: Session) -> None:
    stored.time_zone = form.time_zone
    stored.auto_sync = form.auto_sync
    stored.conflict_policy = form.conflict_policy
    if form.sync_mode is not None:
        set_sync_mode(session, stored, form.sync_mode, sync_state().config.sync_mode)
    if form.alert_emails is not None or form.alert_webhook is not None:
        set_alert_recipients(session, emails=form.alert_emails, webhook_url=form.alert_webhook)


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
        _store(stored, form, session)
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
                _store(stored, form, session)
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
