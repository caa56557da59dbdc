"""Alerts: the extension's own subscriber to its signals, and the delivery of what it opens.

The receivers here only open and clear incidents in the database (``incidents``): they run
in whatever process sent the signal, a web request included, so they do no network I/O.
Delivery (:func:`deliver_pending`) is called where waiting is harmless: the RQ worker after
a run (and its ``deliver_alerts_job``), the CLI after ``sync``; the admin's "run now" and
the cron endpoint queue that job instead of sending from the request.

Email goes through the ``send_mail`` callable the host gave ``ZohoSync``, or Flask-Mail
when the app has it; with neither, incidents show as a banner on the admin pages only, and
the settings page says why. The webhook gets Slack-compatible JSON (``{"text": ...}``),
signed with HMAC-SHA256 over the exact body in :data:`SIGNATURE_HEADER` when
ZOHO_SYNC_ALERT_WEBHOOK_SECRET is set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import requests
import sqlalchemy as sa
from flask import Flask, current_app, has_app_context

from .errors import ConfigurationError
from .incidents import (
    INCIDENT_PAGES,
    INCIDENT_TITLES,
    alert_recipients,
    clear_incidents,
    open_incident,
)
from .models import Incident, Run
from .signals import (
    connection_lost,
    connection_restored,
    credit_budget_low,
    mapping_field_paused,
    mapping_field_resumed,
    mass_delete_blocked,
    run_finished,
)
from .state import ZohoSyncState, state_of
from .sync.revert import REVERT_TRIGGER
from .zoho.errors import ZohoReconnectRequired, ZohoRetryLater

log = logging.getLogger(__name__)

#: The webhook's signature: ``sha256=`` and the hex HMAC-SHA256 of the body with the secret.
SIGNATURE_HEADER = "X-Zoho-Sync-Signature"
#: Failed runs that Zoho said to retry later (429, 5xx) are retried by the queue on their
#: own; they become an incident only once this many runs in a row failed.
RETRY_LATER_RUNS_BEFORE_ALERT = 3
NO_MAIL_TRANSPORT = (
    "Email alerts cannot be sent: the app gave no send_mail callable "
    "(ZohoSync(app, db=db, send_mail=...)) and Flask-Mail is not set up on it; incidents "
    "show as a banner on these pages only."
)

SendMail = Callable[..., Any]


# -- incidents from signals --------------------------------------------------------------------


def _state_for(sender: Any) -> ZohoSyncState | None:
    if not isinstance(sender, Flask):
        return None
    try:
        return state_of(sender)
    except ConfigurationError:
        return None


def _open_and_commit(sender: Any, kind: str, summary: str, subject: str = "") -> None:
    state = _state_for(sender)
    if state is not None:
        try:
            open_incident(state.db.session, kind, summary, subject=subject)
            state.db.session.commit()
        except Exception:
            # A database without the incident table (an upgrade not migrated yet): the
            # run's own work is committed; the session must stay usable after it.
            state.db.session.rollback()
            raise


def _on_connection_lost(sender: Any, *, reason: str | None = None, **_: Any) -> None:
    _open_and_commit(
        sender, "connection_lost", reason or "Zoho refused the stored connection; reconnect."
    )


def _on_connection_restored(sender: Any, **_: Any) -> None:
    state = _state_for(sender)
    if state is not None:
        clear_incidents(state.db.session, "connection_lost")
        state.db.session.commit()


def _on_budget_low(sender: Any, *, reason: str, **_: Any) -> None:
    _open_and_commit(sender, "budget_low", reason)


def _on_mass_delete_blocked(sender: Any, *, reason: str | None = None, **_: Any) -> None:
    _open_and_commit(sender, "breaker_tripped", reason or "A run stopped before mass deletions.")


def _field_subject(module: str, zoho_field: str) -> str:
    return f"{module}.{zoho_field}"


def _on_field_paused(
    sender: Any, *, module: str, zoho_field: str, host_field: str | None, reason: str, **_: Any
) -> None:
    """Opened in the pausing code's own transaction (not committed here): a pause that is
    rolled back takes its incident with it."""
    state = _state_for(sender)
    if state is not None:
        shown = f"{host_field} <-> {zoho_field}" if host_field else zoho_field
        # In a savepoint: should the incident fail, the pause itself still commits.
        with state.db.session.begin_nested():
            open_incident(
                state.db.session,
                "field_paused",
                f"The mapping {shown} ({module}) is paused: {reason}",
                subject=_field_subject(module, zoho_field),
            )


def _on_field_resumed(sender: Any, *, module: str, zoho_field: str, **_: Any) -> None:
    state = _state_for(sender)
    if state is not None:
        clear_incidents(
            state.db.session, "field_paused", subject=_field_subject(module, zoho_field)
        )


def _failed_runs_in_a_row(state: ZohoSyncState) -> int:
    statuses = state.db.session.scalars(
        sa.select(Run.status)
        .where(Run.dry_run.is_(False), Run.status != "running")
        .order_by(Run.id.desc())
        .limit(RETRY_LATER_RUNS_BEFORE_ALERT)
    )
    count = 0
    for status in statuses:
        if status != "failed":
            break
        count += 1
    return count


def _on_run_finished(
    sender: Any, *, report: Any, dry_run: bool, trigger: str | None = None, **_: Any
) -> None:
    """A failed run opens ``run_failed``; a run that reached its end clears what it proves
    fine again: runs, the connection, the breaker, and the budget once it is not low.

    A revert is left out: the admin who started it reads its outcome on the spot, and its
    success proves nothing about the breaker's waiting deletions or the sync's runs."""
    state = _state_for(sender)
    if state is None or dry_run or (trigger or "").startswith(REVERT_TRIGGER):
        return
    try:
        _settle_run(state, report)
        state.db.session.commit()
    except Exception:
        state.db.session.rollback()  # the session stays usable for the job after the run
        raise


def _settle_run(state: ZohoSyncState, report: Any) -> None:
    session = state.db.session
    if report.status == "failed":
        if isinstance(report.error, ZohoReconnectRequired):
            return  # its own incident, connection_lost
        transient = isinstance(report.error, ZohoRetryLater)
        if not transient or _failed_runs_in_a_row(state) >= RETRY_LATER_RUNS_BEFORE_ALERT:
            open_incident(session, "run_failed", report.message or "A sync run failed.")
    elif report.status in ("succeeded", "partial"):
        for kind in ("run_failed", "connection_lost", "breaker_tripped"):
            clear_incidents(session, kind)
        if state.credit_budget_low() is None:
            clear_incidents(session, "budget_low")


_RECEIVERS = (
    (connection_lost, _on_connection_lost),
    (connection_restored, _on_connection_restored),
    (credit_budget_low, _on_budget_low),
    (mass_delete_blocked, _on_mass_delete_blocked),
    (mapping_field_paused, _on_field_paused),
    (mapping_field_resumed, _on_field_resumed),
    (run_finished, _on_run_finished),
)


def connect_alerts() -> None:
    """Subscribe the alerts to every app's signals (idempotent; ``init_app`` calls it)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(receiver, weak=False)


# -- delivery --------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """What one delivery pass did: alerts sent, and why any could not be."""

    sent: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def mail_transport(state: ZohoSyncState, app: Flask | None) -> tuple[SendMail | None, str | None]:
    """How email goes out (the host's callable, else Flask-Mail), or why it cannot."""
    if state.send_mail is not None:
        return state.send_mail, None
    mail = app.extensions.get("mail") if app is not None else None
    if mail is not None:
        try:
            from flask_mail import Message
        except ImportError:  # another extension registered as "mail"
            return None, NO_MAIL_TRANSPORT

        def send_with_flask_mail(*, subject: str, body: str, recipients: list[str]) -> None:
            mail.send(Message(subject=subject, recipients=recipients, body=body))

        return send_with_flask_mail, None
    return None, NO_MAIL_TRANSPORT


def sign(body: bytes, secret: str) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``: how a receiver verifies it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(url: str, text: str, *, secret: str | None, timeout: float) -> None:
    """POST ``{"text": text}`` to ``url``; raises on a refusal or no answer."""
    body = json.dumps({"text": text}).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    response = requests.post(url, data=body, headers=headers, timeout=timeout)
    if response.status_code >= 300:
        raise RuntimeError(f"the webhook answered HTTP {response.status_code}")


def page_link(state: ZohoSyncState, kind: str) -> str:
    """The admin page an incident sends the admin to (absolute with ZOHO_SYNC_BASE_URL)."""
    path = state.config.url_prefix + INCIDENT_PAGES.get(kind, "/")
    return (state.config.base_url or "") + path


def compose(state: ZohoSyncState, incident: Incident, *, resolved: bool) -> tuple[str, str]:
    """The alert's subject and text."""
    title = INCIDENT_TITLES.get(incident.kind, incident.kind)
    link = page_link(state, incident.kind)
    if resolved:
        subject = f"[Zoho sync] Resolved: {title}"
        text = (
            f"Resolved: {title}. It was opened {incident.opened_at:%Y-%m-%d %H:%M} UTC: "
            f"{incident.summary}\n{link}"
        )
    else:
        subject = f"[Zoho sync] {title}"
        text = f"{title}: {incident.summary}\nOpen the Zoho sync page: {link}"
    return subject, text


def _claim(state: ZohoSyncState, incident_id: int, column: str) -> bool:
    """Mark the alert as being sent, unless another process did first."""
    column_attr = getattr(Incident, column)
    claimed = state.db.session.execute(
        sa.update(Incident)
        .where(Incident.id == incident_id, column_attr.is_(None))
        .values({column: datetime.now(timezone.utc)})
    ).rowcount
    state.db.session.commit()
    return bool(claimed)


def _send_one(state: ZohoSyncState, app: Flask | None, subject: str, text: str) -> list[str]:
    """Send on every channel; the problems (an empty list: it went everywhere)."""
    recipients = alert_recipients(state.db.session, state.config.operations)
    problems = []
    if recipients.emails:
        send_mail, why_not = mail_transport(state, app)
        if send_mail is None:
            problems.append(why_not or NO_MAIL_TRANSPORT)
        else:
            try:
                send_mail(subject=subject, body=text, recipients=list(recipients.emails))
            except Exception as exc:
                problems.append(f"Email could not be sent: {type(exc).__name__}: {exc}")
    if recipients.webhook_url:
        try:
            post_webhook(
                recipients.webhook_url,
                text,
                secret=state.config.operations.alert_webhook_secret,
                timeout=min(10.0, state.config.http_timeout),
            )
        except Exception as exc:
            problems.append(f"The webhook could not be reached: {type(exc).__name__}: {exc}")
    return problems


def _pending(state: ZohoSyncState) -> list[tuple[int, str]]:
    session = state.db.session
    opened = session.scalars(
        sa.select(Incident.id).where(Incident.opened_alert_at.is_(None)).order_by(Incident.id)
    )
    pending = [(incident_id, "opened_alert_at") for incident_id in opened]
    resolved = session.scalars(
        sa.select(Incident.id)
        .where(Incident.cleared_at.is_not(None), Incident.cleared_alert_at.is_(None))
        .order_by(Incident.id)
    )
    pending.extend((incident_id, "cleared_alert_at") for incident_id in resolved)
    return pending


def alerts_pending(state: ZohoSyncState) -> bool:
    return bool(_pending(state))


def deliver_pending(state: ZohoSyncState, app: Flask | None = None) -> DeliveryReport:
    """Send every alert not sent yet: one when an incident opens, one when it clears.

    An alert that reached no channel is released again (the next tick retries it) with its
    reason on the incident; with nobody to tell, alerts are marked done, so recipients
    added later do not receive a backlog of old incidents.
    """
    app = app or (current_app._get_current_object() if has_app_context() else None)  # type: ignore[attr-defined]
    report = DeliveryReport()
    nobody = not alert_recipients(state.db.session, state.config.operations).anyone
    for incident_id, column in _pending(state):
        if not _claim(state, incident_id, column):
            continue
        incident = state.db.session.get(Incident, incident_id)
        if incident is None or nobody:
            continue
        subject, text = compose(state, incident, resolved=column == "cleared_alert_at")
        problems = _send_one(state, app, subject, text)
        incident.delivery_error = "; ".join(problems) or None
        if problems and len(problems) >= _channels(state):
            setattr(incident, column, None)  # reached nobody: the next pass tries again
            report.problems.extend(problems)
        else:
            report.sent.append(subject)
            report.problems.extend(problems)
        state.db.session.commit()
    return report


def _channels(state: ZohoSyncState) -> int:
    recipients = alert_recipients(state.db.session, state.config.operations)
    return int(bool(recipients.emails)) + int(bool(recipients.webhook_url))


def deliver_quietly(state: ZohoSyncState) -> None:
    """:func:`deliver_pending` where an alert must never fail the work around it (after a
    run in the worker or the CLI): problems are logged, and kept on the incident."""
    try:
        report = deliver_pending(state)
    except Exception:
        log.exception("Could not deliver the Zoho sync's alerts; the next tick tries again")
        state.db.session.rollback()
        return
    for problem in report.problems:
        log.warning("Zoho sync alert: %s", problem)
