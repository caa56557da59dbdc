"""Rendering shared by the admin views: pages, fragments, refusals and Zoho's errors.

Every Zoho failure an admin can meet becomes a page (or, for htmx, a message) saying what
happened and what to do next; none of them may end as a bare 500. Zoho's exception messages
are written to be shown (they never hold tokens or record data) and are escaped like any
other Zoho text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any

import sqlalchemy as sa
from flask import current_app, render_template, url_for
from flask.typing import ResponseReturnValue

from ..errors import ZohoSyncError
from ..incidents import INCIDENT_PAGES, INCIDENT_TITLES, open_incidents
from ..models import SyncSettings
from ..preferences import zone_of
from ..schema import missing_tables
from ..state import ZohoSyncState
from ..zoho.datacentres import EXTRA_SERVERS_SETTING
from ..zoho.errors import (
    UnknownAccountsServer,
    ZohoError,
    ZohoRateLimited,
    ZohoReconnectRequired,
    ZohoRetryLater,
    ZohoSettingError,
    ZohoTokenThrottled,
)
from .blueprint import sync_state
from .csrf import csrf_token
from .messages import take


def render_refusal(template: str, status: int, **context: Any) -> ResponseReturnValue:
    """A refusal page with its status.

    htmx 2 does not swap 4xx/5xx answers by default; ``_head.html`` configures it to put
    the ``#zs-error-message`` part of such an answer into the page's alert box instead, so
    the same template serves both a full page and an in-place message.
    """
    return render_template(template, **context), status


@dataclass(frozen=True)
class ZohoProblem:
    """A Zoho error told for an admin: what happened, what to do, and which button helps."""

    title: str
    message: str
    status: int
    action: str | None = None  # "connect" | "retry" | "settings"


def describe_zoho_error(exc: ZohoError) -> ZohoProblem:
    """Sort a Zoho error by remedy (the exception tree is grouped that way, zoho/errors.py)."""
    if isinstance(exc, UnknownAccountsServer):
        return ZohoProblem(
            "Untrusted Zoho accounts server",
            f"{exc.message}. If this server is yours (the local sandbox, for example), add it "
            f"to {EXTRA_SERVERS_SETTING} in the app's configuration; otherwise ignore the link "
            "that brought you here.",
            400,
        )
    if isinstance(exc, (ZohoTokenThrottled, ZohoRateLimited)):
        return ZohoProblem("Zoho asks us to wait", f"{exc.message}. {exc.advice}", 503, "retry")
    if isinstance(exc, ZohoRetryLater):
        return ZohoProblem(
            "Zoho did not answer",
            f"Zoho did not answer; try again in a minute. ({exc.message})",
            503,
            "retry",
        )
    if isinstance(exc, ZohoReconnectRequired):
        hint = ""
        if exc.code in ("invalid_client", "invalid_client_secret"):
            hint = "Wrong data centre or client secret? "
        return ZohoProblem(
            "Zoho refused the connection",
            f"{hint}{exc.message}. {exc.advice}",
            400,
            "connect",
        )
    if isinstance(exc, ZohoSettingError):
        return ZohoProblem(
            "Zoho refused the request", f"{exc.message}. {exc.advice}", 400, "settings"
        )
    return ZohoProblem("Zoho refused the request", str(exc), 502, "retry")


def render_zoho_error(exc: ZohoError) -> ResponseReturnValue:
    problem = describe_zoho_error(exc)
    return render_refusal(
        "zoho_sync/error.html",
        problem.status,
        title=problem.title,
        message=problem.message,
        action=problem.action,
    )


def display_zone(state: ZohoSyncState) -> tzinfo:
    """The zone times are shown in: the sync's configured zone (the admin's choice)."""
    try:
        if missing_tables(state.db.engine, state.adapter):
            return timezone.utc  # the page being rendered is the one that says so
    except ZohoSyncError:
        return timezone.utc
    settings = state.db.session.scalars(sa.select(SyncSettings).order_by(SyncSettings.id)).first()
    return zone_of(settings) if settings is not None else timezone.utc


def format_moment(moment: datetime | str | None, zone: tzinfo) -> str:
    """``26 Nov 2026, 14:03 AEDT``, or "never"."""
    if moment is None:
        return "never"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    local = moment.astimezone(zone)
    return f"{local.day} {local:%b %Y, %H:%M} {local.tzname() or ''}".rstrip()


def template_helpers() -> dict[str, Any]:
    """Blueprint context processor: only the admin pages see these names, and they are
    prefixed so a host layout's own ``csrf_token`` or ``when`` is never shadowed."""

    def token() -> str:
        # Without a secret key there is no session to keep a token in; the page that
        # explains how to set one must still render.
        return csrf_token() if current_app.secret_key else ""

    state = sync_state()
    zone = display_zone(state)
    return {
        "zoho_sync_csrf_token": token,
        "zs_when": lambda moment: format_moment(moment, zone),
        "zoho_sync_messages": take,
        "zs_open_incidents": lambda: incident_banner(state),
    }


def incident_banner(state: ZohoSyncState) -> list[dict[str, Any]]:
    """The open incidents every admin page shows on top: the alerts' banner, and the only
    word of them when no email or webhook can carry them."""
    base = url_for("zoho_sync.overview").rstrip("/")
    return [
        {
            "title": INCIDENT_TITLES.get(incident.kind, incident.kind),
            "summary": incident.summary,
            "opened_at": incident.opened_at,
            "link": base + INCIDENT_PAGES.get(incident.kind, "/"),
        }
        for incident in open_incidents(state.db.session)
    ]
