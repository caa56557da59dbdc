"""Incidents (trouble an admin hears of once, and once more when it clears) and who hears.

An incident is a row, not a message: whichever process notices the trouble (the RQ worker,
the CLI, a web request) opens it in the database, and whichever process delivers alerts
later claims its alert there. So one run failing a thousand records is one incident, a
worker and a web process never both send it, and an alert that could not be delivered is
tried again by the next tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .config import OperationsConfig, check_email, check_webhook_url
from .models import AlertRecipients, Incident

#: The kinds of incident, in the words the alerts and pages use for each.
INCIDENT_TITLES = {
    "run_failed": "A Zoho sync run failed",
    "connection_lost": "The Zoho connection is lost",
    "breaker_tripped": "A sync stopped before mass deletions",
    "budget_low": "The sync's Zoho credits run low",
    "field_paused": "A mapped field is paused",
}
#: Where each kind sends the admin (a path under the admin pages' prefix).
INCIDENT_PAGES = {
    "run_failed": "/history",
    "connection_lost": "/",
    "breaker_tripped": "/sync",
    "budget_low": "/",
    "field_paused": "/mapping",
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def open_incident(session: Session, kind: str, summary: str, *, subject: str = "") -> bool:
    """Open ``kind`` (for ``subject``) unless it is open already; True when newly opened.

    Added to ``session`` and flushed, not committed: the caller's transaction decides, so a
    pause that is rolled back takes its incident with it.
    """
    if kind not in INCIDENT_TITLES:
        raise ValueError(f"unknown incident kind {kind!r}; one of {', '.join(INCIDENT_TITLES)}")
    current = session.scalars(
        sa.select(Incident).where(
            Incident.kind == kind, Incident.subject == subject, Incident.cleared_at.is_(None)
        )
    ).first()
    if current is not None:
        return False
    session.add(Incident(kind=kind, subject=subject, summary=summary[:2000], opened_at=_now()))
    session.flush()
    return True


def clear_incidents(session: Session, kind: str, *, subject: str | None = None) -> int:
    """Clear the open incidents of ``kind`` (of ``subject`` only, when given); how many."""
    query = sa.update(Incident).where(Incident.kind == kind, Incident.cleared_at.is_(None))
    if subject is not None:
        query = query.where(Incident.subject == subject)
    return int(session.execute(query.values(cleared_at=_now())).rowcount or 0)


def open_incidents(session: Session) -> list[Incident]:
    return list(
        session.scalars(
            sa.select(Incident).where(Incident.cleared_at.is_(None)).order_by(Incident.opened_at)
        )
    )


@dataclass(frozen=True)
class Recipients:
    """Who hears of incidents, as stored (or, where nothing is stored, as configured)."""

    emails: tuple[str, ...]
    webhook_url: str | None

    @property
    def anyone(self) -> bool:
        return bool(self.emails or self.webhook_url)


def alert_recipients(session: Session, config: OperationsConfig) -> Recipients:
    """The stored recipients; a column never set falls back to the configuration."""
    row = session.scalars(sa.select(AlertRecipients).order_by(AlertRecipients.id)).first()
    emails = row.emails if row is not None else None
    webhook = row.webhook_url if row is not None else None
    return Recipients(
        emails=config.alert_emails if emails is None else parse_emails(emails, "stored"),
        webhook_url=config.alert_webhook_url if webhook is None else (webhook or None),
    )


def parse_emails(text: str, origin: str) -> tuple[str, ...]:
    """Comma- or whitespace-separated addresses, each checked; "" is nobody."""
    parts = [part for part in text.replace(",", " ").split() if part]
    return tuple(check_email(origin, part) for part in parts)


def set_alert_recipients(
    session: Session, *, emails: str | None = None, webhook_url: str | None = None
) -> None:
    """Store recipients (None: leave that one as it is; "": nobody), checked first.

    Raises ``ConfigurationError`` naming the bad value; nothing is stored then.
    """
    checked_emails = None if emails is None else ", ".join(parse_emails(emails, "Alert emails"))
    checked_url = None
    if webhook_url is not None:
        checked_url = check_webhook_url("Alert webhook", webhook_url) if webhook_url.strip() else ""
    row = session.scalars(sa.select(AlertRecipients).order_by(AlertRecipients.id)).first()
    if row is None:
        row = AlertRecipients()
        session.add(row)
    if checked_emails is not None:
        row.emails = checked_emails
    if checked_url is not None:
        row.webhook_url = checked_url
    session.flush()


__all__ = [
    "INCIDENT_PAGES",
    "INCIDENT_TITLES",
    "Recipients",
    "alert_recipients",
    "clear_incidents",
    "open_incident",
    "open_incidents",
    "parse_emails",
    "set_alert_recipients",
]
