"""Endpoints machines call: the scheduler's tick and Zoho's notifications.

Neither has an admin session, so both are ``public`` and authenticate themselves: the cron
endpoint with the shared secret in ``X-Zoho-Sync-Secret`` (compared in constant time), the
notify endpoint with the channel id and token we gave Zoho. Both answer JSON, never a page,
and a refusal changes nothing.
"""

from __future__ import annotations

import hmac
import logging

import redis
import sqlalchemy as sa
from flask import jsonify, request
from flask.typing import ResponseReturnValue

from ..errors import ZohoSyncError
from ..jobs import schedule_notified_pull, tick_answer, tick_tenants
from ..models import SyncSettings
from ..notifications import NotificationRefused, verify_notification
from ..schema import require_tables
from ..state import ZohoSyncState
from ..tenancy import ALL_TENANTS, current_tenant, tenant_context
from .blueprint import bp, sync_state
from .request_body import BodyRefused, parse_bounded_json, read_bounded_body
from .security import public

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Zoho-Sync-Secret"
#: Zoho's notification bodies are small; anything larger is not one.
MAX_NOTIFICATION_BYTES = 256 * 1024
#: A notification is an object holding a list of ids (depth 2); room to spare, no more.
MAX_NOTIFICATION_DEPTH = 32


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify({"ok": False, "error": message}), status


def _database_not_ready(state: ZohoSyncState) -> ResponseReturnValue | None:
    """A 503 naming the missing tables, so a scheduler's log says what to run, not a 500.

    Schedulers and Zoho retry a 503; nothing is lost meanwhile (edits stay in the host's own
    tables, Zoho's changes are found by the first pull once the tables exist).
    """
    try:
        require_tables(state.db.engine, state.adapter)
    except ZohoSyncError as exc:
        return _error(503, str(exc))
    return None


@bp.post("/cron")
@public
def cron() -> ResponseReturnValue:
    """What ``flask zoho-sync tick`` does, for platform schedulers that call URLs.

    The body is never read (the secret travels in a header), so a huge or endless upload
    costs nothing here; the server drops what was not read with the connection.
    """
    state = sync_state()
    expected = state.config.cron_secret
    if not expected:
        return _error(
            403,
            "The cron endpoint is disabled: set ZOHO_SYNC_CRON_SECRET and send it in the "
            f"{SECRET_HEADER} header (or run 'flask zoho-sync tick' from cron instead).",
        )
    sent = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        return _error(403, f"Wrong or missing {SECRET_HEADER} header.")
    not_ready = _database_not_ready(state)
    if not_ready is not None:
        return not_ready
    try:
        reports = tick_tenants(state)
    except (redis.RedisError, OSError) as exc:
        return _error(
            503,
            f"Redis did not answer ({type(exc).__name__}); nothing was lost, pending changes "
            "stay in the outbox. Check ZOHO_SYNC_REDIS_URL and call again.",
        )
    return jsonify({"ok": True, **tick_answer(reports)})


def _settings_of_channel(state: ZohoSyncState, payload: object) -> SyncSettings | None:
    """The settings (and so the tenant) whose channel a notification names; Zoho calls one
    URL for every tenant's channel. The token is checked against that tenant's alone."""
    session = state.db.session
    channel = payload.get("channel_id") if isinstance(payload, dict) else None
    if channel is not None:
        statement = (
            sa.select(SyncSettings)
            .where(SyncSettings.notify_channel_id == str(channel))
            .execution_options(**{ALL_TENANTS: True})
        )
        found = session.scalars(statement).first()
        if found is not None:
            return found
    # No tenant has that channel: checked against the request's own, which refuses it.
    return session.scalars(sa.select(SyncSettings)).first()


@bp.post("/notify")
@public
def notify() -> ResponseReturnValue:
    """Zoho says records changed: pull just those, within a minute.

    The body is read bounded (bytes and nesting) before anything else looks at it; a
    body that is not JSON at all is passed on as None, and refused as not a notification.
    """
    try:
        body = read_bounded_body(MAX_NOTIFICATION_BYTES)
        payload = parse_bounded_json(body, MAX_NOTIFICATION_DEPTH) if request.is_json else None
    except BodyRefused as exc:
        log.warning("Refused a Zoho notification: %s", exc)
        return _error(exc.status, f"Not a Zoho notification: {exc}")
    state = sync_state()
    not_ready = _database_not_ready(state)
    if not_ready is not None:
        return not_ready
    settings = _settings_of_channel(state, payload)
    try:
        notification = verify_notification(state, settings, payload)
    except NotificationRefused as exc:
        log.warning("Refused a Zoho notification: %s", exc)
        return _error(403 if payload is not None else 400, str(exc))
    try:
        with tenant_context(settings.tenant_id if settings is not None else current_tenant()):
            job = schedule_notified_pull(state, notification.ids, notification.written)
    except (redis.RedisError, OSError) as exc:
        # Zoho does not promise to retry; the scheduled pull will still find the change.
        log.warning("Could not schedule the pull Zoho asked for: %s", exc)
        return _error(503, "Could not schedule the pull now; the next scheduled pull gets it.")
    return jsonify({"ok": True, "ids": len(notification.ids), "job": job})
