"""Zoho notification channels: Zoho tells us which records changed, so edits made in Zoho
arrive within a minute instead of at the next scheduled pull.

Notifications are hints: they carry ids, not data, and Zoho documents no delivery
guarantee (reference §5). The pull stays the source of truth; a notification only makes
the next pull of the named records happen sooner. Channels live at most a week, so the tick
renews ours two days before it expires.

Our channel asks for ``return_affected_field_values``: an update's notification then says
what it wrote, which is the one trace left of a Zoho edit that our own write, on its way at
that moment, overwrote (``sync.notified``; the notified pull settles it as a conflict).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from .models import SyncSettings
from .sync.notified import NotifiedWrite
from .zoho.timefmt import format_datetime

if TYPE_CHECKING:
    from .state import ZohoSyncState

#: Zoho caps channel_expiry at a week; ask for a little less so clocks never disagree.
CHANNEL_LIFETIME = timedelta(days=7) - timedelta(minutes=5)
RENEW_BEFORE = timedelta(days=2)


def notify_url(state: ZohoSyncState) -> str | None:
    """Where Zoho must POST: needs the app's public address (ZOHO_SYNC_BASE_URL)."""
    if not state.config.base_url:
        return None
    return f"{state.config.base_url}{state.config.url_prefix}/notify"


def watched_modules(state: ZohoSyncState, settings: SyncSettings) -> list[str]:
    """The modules our channel watches: the sync's, and in Leads mode with converted leads
    followed (``ZOHO_SYNC_ON_LEAD_CONVERSION = follow``) Contacts too, where the followed
    contacts' records are (``sync.followed``)."""
    if not settings.module:
        return []
    if settings.module == "Leads" and state.config.on_lead_conversion == "follow":
        return ["Leads", "Contacts"]
    return [settings.module]


def _watch_tag(modules: list[str]) -> str:
    """What ``notify_module`` keeps of the watched modules ("Leads+Contacts")."""
    return "+".join(modules)


def ensure_channel(
    state: ZohoSyncState, session: Session, settings: SyncSettings, *, now: datetime | None = None
) -> str:
    """Subscribe or renew the channel when needed; says what it did ("off", "ok", "renewed")."""
    url = notify_url(state)
    if url is None or not settings.module:
        return "off"
    moment = now or datetime.now(timezone.utc)
    modules = watched_modules(state, settings)
    current = (
        settings.notify_channel_id
        and settings.notify_module == _watch_tag(modules)
        and settings.notify_expires_at is not None
        and settings.notify_expires_at - moment > RENEW_BEFORE
    )
    if current:
        return "ok"
    channel_id = settings.notify_channel_id or str(secrets.randbelow(9 * 10**15) + 10**15)
    token = secrets.token_urlsafe(30)[:40]  # Zoho allows at most 50 characters
    expires = moment + CHANNEL_LIFETIME
    state.client().watch(
        [
            {
                "channel_id": channel_id,
                "events": [f"{module}.all" for module in modules],
                "notify_url": url,
                "token": token,
                "channel_expiry": format_datetime(expires),
                "notify_on_related_action": False,
                "return_affected_field_values": True,
            }
        ]
    )
    settings.notify_channel_id = channel_id
    settings.notify_token_encrypted = state.vault.encrypt(token)
    settings.notify_module = _watch_tag(modules)
    settings.notify_expires_at = expires
    session.commit()
    return "renewed"


@dataclass(frozen=True)
class Notification:
    module: str
    ids: list[str]
    operation: str
    #: What the notification said each update wrote (``affected_values``), so the notified
    #: pull can tell a Zoho edit that our own write replaced.
    written: list[NotifiedWrite] = field(default_factory=list)


def _written(payload: dict[str, Any], ids: list[str]) -> list[NotifiedWrite]:
    """The ``affected_values`` of an update's payload; anything malformed is left out (the
    notified pull still reads the records, so a bad entry costs only the check)."""
    entries = payload.get("affected_values")
    server_time = payload.get("server_time")
    if (
        payload.get("operation") != "update"
        or not isinstance(entries, list)
        or isinstance(server_time, bool)
        or not isinstance(server_time, int)
    ):
        return []
    at = datetime.fromtimestamp(server_time / 1000, tz=timezone.utc)
    named = set(ids)
    written = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
            continue
        record_id = str(entry.get("record_id") or "")
        if record_id in named:
            written.append(NotifiedWrite(record_id, at, dict(entry["values"])))
    return written


class NotificationRefused(ValueError):
    """The payload is not from our channel, or is not a notification at all."""


def verify_notification(
    state: ZohoSyncState, settings: SyncSettings | None, payload: Any
) -> Notification:
    """Check a POSTed payload against our channel's id and token (constant time)."""
    if not isinstance(payload, dict):
        raise NotificationRefused("the body is not a JSON object")
    if settings is None or not settings.notify_channel_id or not settings.notify_token_encrypted:
        raise NotificationRefused("no notification channel is registered")
    channel_ok = hmac.compare_digest(
        str(payload.get("channel_id", "")).encode(), settings.notify_channel_id.encode()
    )
    expected = state.vault.decrypt(settings.notify_token_encrypted)
    token_ok = hmac.compare_digest(str(payload.get("token", "")).encode(), expected.encode())
    if not (channel_ok and token_ok):
        raise NotificationRefused("unknown channel or wrong token")
    ids = payload.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, (str, int)) for i in ids):
        raise NotificationRefused("ids must be a list of record ids")
    module = str(payload.get("module") or "")
    followed = (
        module == "Contacts"
        and settings.module == "Leads"
        and module in (settings.notify_module or "").split("+")
    )
    if module != settings.module and not followed:
        raise NotificationRefused(
            f"notification for {module!r}, but the sync uses {settings.module}"
        )
    named = [str(record_id) for record_id in ids][:1000]
    return Notification(
        module=module,
        ids=named,
        operation=str(payload.get("operation") or ""),
        written=_written(payload, named),
    )
