"""History: what the runs did, which records failed and why, and each record's own story.

A failed record is kept until it syncs cleanly (its error is then marked resolved), so the
list is what still needs attention, not a log to scroll. Retry puts the contact back in the
outbox and schedules a push; the contact's own history says what happened next.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote

import redis
import sqlalchemy as sa
from flask import abort, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..connection import ConnectedAccount, describe_connection
from ..dbids import row_by_id
from ..jobs import schedule_push
from ..ledger import Ledger
from ..models import FieldMap, LeadConversion, RecordHistory, Run
from ..preferences import email_key_of, get_settings
from ..state import ZohoSyncState
from ..sync.revert import REVERT_TRIGGER
from .blueprint import bp, sync_state
from .messages import tell
from .rendering import display_zone
from .url_values import page_number
from .words import DIRECTIONS, skipped, skipped_total

PAGE_SIZE = 50
#: Record changes per page of a run: a 10,000-record run is 100 pages, each one quick.
RUN_PAGE_SIZE = 100
#: An outcome an admin filters by, and the history actions it covers. Skipped records are
#: counted by the engine, never stored one by one, so that filter shows the counts alone.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "created": ("create",),
    "updated": ("update", "link", "convert"),
    "deleted": ("delete",),
    "failed": ("error",),
    # Records a revert left alone have a row each (with both values); the engine's own
    # skips are only counted (``words.skipped``).
    "skipped": ("skip",),
}
OUTCOME_LABELS = {
    "created": "Created",
    "updated": "Updated",
    "deleted": "Deleted",
    "failed": "Failed",
    "skipped": "Skipped",
}
#: The outcomes History filters runs by (skipped records leave no row to find a run by).
RUN_OUTCOMES = ("created", "updated", "deleted", "failed")
#: Run kinds that can write each way.
_KINDS_WRITING = {"to_zoho": ("sync", "push", "revert"), "to_host": ("sync", "pull", "revert")}
#: How many host contacts an email filter may match before it asks for more of the address.
EMAIL_MATCHES = 500


def zoho_record_url(
    account: ConnectedAccount | None, module: str | None, zoho_id: str | None
) -> str | None:
    """Where the record opens in Zoho's web UI.

    Zoho's CRM UI lives at ``crm.zoho.{tld}`` beside the API's ``www.zohoapis.{tld}``, and
    a record's page is ``/crm/org{org id}/tab/{Module}/{record id}``; the org part is the
    org's ``domain_name`` when Zoho gave one (it is ``org`` and a number, usually the id).
    A server that is not Zoho's (the sandbox) serves the same path on its own address.
    """
    if account is None or not module or not zoho_id:
        return None
    org = account.org_domain or (f"org{account.org_id}" if account.org_id else None)
    if not org:
        return None
    api = account.api_domain.rstrip("/")
    web = api.replace("://www.zohoapis.", "://crm.zoho.") if "://www.zohoapis." in api else api
    return f"{web}/crm/{quote(org)}/tab/{quote(module)}/{quote(str(zoho_id))}"


@bp.app_template_filter("zs_duration")
def duration(run: Run) -> str:
    """How long a run took, as an admin reads it (``4 s``, ``2 min 5 s``, ``1 h 3 min``).

    A run still going (or one a crashed worker left "running") has no end, so it shows
    "—" rather than a time that keeps growing.
    """
    if run.started_at is None or run.finished_at is None:
        return "—"
    start, end = run.started_at, run.finished_at
    if (start.tzinfo is None) != (end.tzinfo is None):  # SQLite drops the zone
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    seconds = max(int((end - start).total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@dataclass(frozen=True)
class ContactCard:
    """A host contact as the pages name it: who (name, email) and where its page is."""

    contact_id: str
    name: str | None
    email: str | None
    url: str | None

    @property
    def label(self) -> str:
        if self.name and self.email:
            return f"{self.name} ({self.email})"
        return self.name or self.email or f"Contact {self.contact_id}"


def _name_of(values: dict[str, Any]) -> str | None:
    """The contact's name from its values, whatever the host calls the columns."""
    for key in ("name", "full_name", "display_name"):
        if values.get(key):
            return str(values[key])
    parts = [values.get(key) for key in ("first_name", "last_name")]
    joined = " ".join(str(part) for part in parts if part)
    return joined or None


def contact_cards(
    state: ZohoSyncState, contact_ids: Iterable[str | None]
) -> dict[str, ContactCard]:
    """Cards for the contacts still on this site (one query for all of them)."""
    wanted = sorted({contact_id for contact_id in contact_ids if contact_id})
    if not wanted:
        return {}
    adapter = state.adapter
    try:
        contacts = adapter.get_many(wanted)
    except NotImplementedError:
        contacts = {cid: found for cid in wanted if (found := adapter.get(cid)) is not None}
    email_key = email_key_of(adapter)
    cards = {}
    for contact_id, contact in contacts.items():
        try:
            values = adapter.get_values(contact)
        except NotImplementedError:
            values = {}
        try:
            url = adapter.contact_url(contact)
        except Exception:  # a host's URL builder must not break the history pages
            url = None
        email = values.get(email_key) or getattr(contact, email_key, None)
        cards[contact_id] = ContactCard(
            contact_id=contact_id,
            name=_name_of(values),
            email=str(email) if email else None,
            url=url,
        )
    return cards


def _contact_ids_by_email(state: ZohoSyncState, text: str) -> list[str] | None:
    """Ids of the host contacts whose email contains ``text`` (None: too many to list)."""
    adapter = state.adapter
    model = getattr(adapter, "model", None)
    column = getattr(model, email_key_of(adapter), None) if model is not None else None
    if column is None:
        found = adapter.find_by_email(text)
        return [adapter.contact_id(found)] if found is not None else []
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    session = state.db.session
    matches = session.scalars(
        sa.select(model).where(column.ilike(f"%{escaped}%", escape="\\")).limit(EMAIL_MATCHES + 1)
    ).all()
    if len(matches) > EMAIL_MATCHES:
        return None
    return [adapter.contact_id(contact) for contact in matches]


def _bad_filter(message: str) -> ResponseReturnValue:
    page = render_template(
        "zoho_sync/error.html", title="This filter cannot be used", message=message
    )
    abort(make_response(page, 400))


def _choice(name: str, allowed: Iterable[str]) -> str:
    value = request.args.get(name, "").strip()
    allowed = tuple(allowed)
    if value and value not in allowed:
        shown = value if len(value) <= 40 else value[:40] + "…"
        _bad_filter(f"{shown!r} is not one of the choices ({', '.join(allowed)}).")
    return value


def _day(name: str) -> date | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "…"
        _bad_filter(f"{shown!r} is not a date; write it as year-month-day, e.g. 2026-11-30.")
    return None  # unreachable: abort() raised


def _start_of(day: date, zone: tzinfo) -> datetime:
    """Midnight of ``day`` in ``zone`` (the one the pages show times in), as an aware instant."""
    return datetime.combine(day, time.min, tzinfo=zone)


@dataclass(frozen=True)
class HistoryFilter:
    """What History is asked to show; the defaults hide the runs that changed nothing."""

    direction: str = ""
    outcome: str = ""
    since: date | None = None
    until: date | None = None
    quiet: bool = False
    #: Days begin and end at midnight in the zone the pages show times in.
    zone: tzinfo = timezone.utc

    @classmethod
    def from_request(cls, zone: tzinfo) -> HistoryFilter:
        since, until = _day("from"), _day("to")
        if since and until and since > until:
            _bad_filter("The first day comes after the last one; swap them.")
        return cls(
            direction=_choice("direction", DIRECTIONS),
            outcome=_choice("outcome", RUN_OUTCOMES),
            since=since,
            until=until,
            quiet=request.args.get("quiet") in ("1", "on", "true"),
            zone=zone,
        )

    @property
    def active(self) -> bool:
        return bool(self.direction or self.outcome or self.since or self.until)

    def arguments(self) -> dict[str, str]:
        """The filter as URL arguments, for the pager's links."""
        values = {
            "direction": self.direction,
            "outcome": self.outcome,
            "from": self.since.isoformat() if self.since else "",
            "to": self.until.isoformat() if self.until else "",
            "quiet": "1" if self.quiet else "",
        }
        return {key: value for key, value in values.items() if value}

    def _base(self) -> tuple[list[sa.ColumnElement[bool]], sa.Exists]:
        """The conditions on the run itself, and "it has rows in the chosen direction and
        outcome" (an EXISTS that reads the (run_id, action) index and stops at one row)."""
        conditions: list[sa.ColumnElement[bool]] = [Run.dry_run.is_(False)]
        if self.since:
            conditions.append(Run.started_at >= _start_of(self.since, self.zone))
        if self.until:
            conditions.append(Run.started_at < _start_of(self.until + timedelta(days=1), self.zone))
        if self.direction:
            conditions.append(Run.kind.in_(_KINDS_WRITING[self.direction]))
        rows = sa.select(RecordHistory.id).where(RecordHistory.run_id == Run.id)
        if self.direction:
            rows = rows.where(RecordHistory.direction == self.direction)
        if self.outcome:
            rows = rows.where(RecordHistory.action.in_(OUTCOMES[self.outcome]))
        return conditions, rows.exists()

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        conditions, touched = self._base()
        if self.outcome == "failed":
            conditions.append(sa.or_(touched, Run.status.in_(("failed", "partial"))))
        elif self.outcome:
            conditions.append(touched)
        elif not self.quiet:
            # A run that changed nothing and ended well is noise; one that failed, paused or
            # is still going is news even with no record changed.
            conditions.append(sa.or_(touched, Run.status != "succeeded"))
        return conditions

    def hidden_conditions(self) -> list[sa.ColumnElement[bool]] | None:
        """The runs this filter hides for having changed nothing (None: it hides none)."""
        if self.quiet or self.outcome:
            return None
        conditions, touched = self._base()
        return [*conditions, Run.status == "succeeded", ~touched]


@bp.get("/history")
def history() -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    page = page_number(PAGE_SIZE)
    wanted = HistoryFilter.from_request(display_zone(state))
    # One row more than a page tells whether an older page exists, without a COUNT(*).
    runs = session.scalars(
        sa.select(Run)
        .where(*wanted.conditions())
        .order_by(Run.id.desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
    ).all()
    older = len(runs) > PAGE_SIZE
    runs = runs[:PAGE_SIZE]
    hidden_conditions = wanted.hidden_conditions()
    hidden = 0
    if hidden_conditions is not None:
        hidden = session.scalar(
            sa.select(sa.func.count()).select_from(Run).where(*hidden_conditions)
        )
    failures = session.scalars(
        sa.select(RecordHistory)
        .where(RecordHistory.action == "error", RecordHistory.resolved_at.is_(None))
        .order_by(RecordHistory.id.desc())
        .limit(200)
    ).all()
    account = describe_connection(session)
    module = get_settings(session).module
    zoho_links = {row.zoho_id: zoho_record_url(account, module, row.zoho_id) for row in failures}
    return render_template(
        "zoho_sync/history.html",
        runs=runs,
        page=page,
        older=older,
        failures=failures,
        cards=contact_cards(state, (row.contact_id for row in failures)),
        zoho_links=zoho_links,
        wanted=wanted,
        hidden=hidden,
        directions=DIRECTIONS,
        outcomes={name: OUTCOME_LABELS[name] for name in RUN_OUTCOMES},
    )


@dataclass(frozen=True)
class RunPage:
    """One page of a run's record changes, with the counts the filter tabs show."""

    rows: list[RecordHistory]
    counts: dict[str, int]
    matching: int
    page: int
    pages: int


def _outcome_counts(session: Any, run: Run) -> dict[str, int]:
    by_action = dict(
        session.execute(
            sa.select(RecordHistory.action, sa.func.count())
            .where(RecordHistory.run_id == run.id)
            .group_by(RecordHistory.action)
        ).all()
    )
    counts = {
        name: sum(int(by_action.get(action, 0)) for action in actions)
        for name, actions in OUTCOMES.items()
    }
    counts["skipped"] += skipped_total(run.counts)
    return counts


@bp.get("/history/runs/<zoho_sync_id:run_id>")
def history_run(run_id: int) -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    run = row_by_id(session, Run, run_id)
    if run is None:
        abort(404)
    outcome = _choice("outcome", OUTCOMES)
    email = request.args.get("email", "").strip()[:254]
    page = page_number(RUN_PAGE_SIZE)
    counts = _outcome_counts(session, run)
    statement = sa.select(RecordHistory).where(RecordHistory.run_id == run.id)
    too_many = False
    if outcome:
        statement = statement.where(RecordHistory.action.in_(OUTCOMES[outcome]))
    if email:
        contact_ids = _contact_ids_by_email(state, email)
        if contact_ids is None:
            too_many = True
            contact_ids = []
        statement = statement.where(RecordHistory.contact_id.in_(contact_ids))
    if email or outcome == "skipped":
        matching = session.scalar(sa.select(sa.func.count()).select_from(statement.subquery()))
    elif outcome:
        matching = counts[outcome]
    else:
        matching = sum(value for key, value in counts.items() if key != "skipped")
        matching += counts["skipped"] - skipped_total(run.counts)
    rows = list(
        session.scalars(
            statement.order_by(RecordHistory.id)
            .offset((page - 1) * RUN_PAGE_SIZE)
            .limit(RUN_PAGE_SIZE)
        )
    )
    pages = max(1, -(-int(matching or 0) // RUN_PAGE_SIZE))
    account = describe_connection(session)
    module = get_settings(session).module
    return render_template(
        "zoho_sync/history_run.html",
        run=run,
        changes=rows,
        listing=RunPage(rows, counts, int(matching or 0), page, pages),
        outcome=outcome,
        outcome_labels=OUTCOME_LABELS,
        email=email,
        too_many=too_many,
        skipped=skipped(run.counts),
        cards=contact_cards(state, (row.contact_id for row in rows)),
        zoho_links={row.zoho_id: zoho_record_url(account, module, row.zoho_id) for row in rows},
        inverted=inverted_fields(session),
        reverted_by=reverted_by(session, run),
    )


def reverted_by(session: Any, run: Run) -> int | None:
    """The revert that took this run back, if one did (the page then offers none)."""
    return session.scalar(
        sa.select(Run.id).where(
            Run.trigger == f"{REVERT_TRIGGER}{run.id}",
            Run.dry_run.is_(False),
            Run.status.in_(("succeeded", "partial")),
        )
    )


def inverted_fields(session: Any) -> dict[str, str]:
    """History's names of inverted opt-out pairs, with the Zoho field they are written to.

    The engine records the subscription in its own terms (subscribed: true/false) under
    the name "Subscription status (Email_Opt_Out)"; read as it stands, "true → false"
    looks like the opt-out box was cleared when the contact in fact opted out.
    """
    rows = session.scalars(
        sa.select(FieldMap).where(
            FieldMap.kind == "system",
            FieldMap.host_key == "subscription",
            FieldMap.inverted.is_(True),
        )
    ).all()
    return {f"Subscription status ({row.zoho_field})": row.zoho_field for row in rows}


# Registered last, so url_for() keeps building the plural form; the singular one is the
# path the issue named and still answers.
@bp.get("/history/contact/<contact_id>")
@bp.get("/history/contacts/<contact_id>")
def history_contact(contact_id: str) -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    changes = session.scalars(
        sa.select(RecordHistory)
        .where(RecordHistory.contact_id == contact_id)
        .order_by(RecordHistory.id.desc())
        .limit(500)
    ).all()
    account = describe_connection(session)
    module = get_settings(session).module
    card = contact_cards(state, [contact_id]).get(contact_id)
    return render_template(
        "zoho_sync/history_contact.html",
        contact_id=contact_id,
        card=card,
        changes=changes,
        cards={contact_id: card} if card else {},
        link=card.url if card else None,
        zoho_links={
            **{row.zoho_id: zoho_record_url(account, module, row.zoho_id) for row in changes},
            **_conversion_links(state, contact_id),
        },
        inverted=inverted_fields(session),
    )


#: The records a lead conversion makes, by the name history gives them, and their modules.
MADE_MODULES = {"Contact": "Contacts", "Account": "Accounts", "Deal": "Deals"}


def _conversion_links(state: ZohoSyncState, contact_id: str) -> dict[str, str]:
    """Zoho pages of the records a contact's converted lead became, by Zoho id: its history
    names them, and after a followed conversion its rows name the Contact."""
    account = describe_connection(state.db.session)
    links: dict[str, str] = {}
    for row in state.db.session.scalars(
        sa.select(LeadConversion).where(LeadConversion.contact_id == contact_id)
    ):
        made = {"Contact": row.contact_zoho_id, "Account": row.account_id, "Deal": row.deal_id}
        for kind, zoho_id in made.items():
            url = zoho_record_url(account, MADE_MODULES[kind], zoho_id)
            if zoho_id and url:
                links[zoho_id] = url
    return links


@bp.post("/history/errors/<zoho_sync_id:error_id>/retry")
def history_retry(error_id: int) -> ResponseReturnValue:
    state = sync_state()
    session = state.db.session
    error = row_by_id(session, RecordHistory, error_id)
    if error is None or error.action != "error" or not error.contact_id:
        abort(404)
    Ledger(session, get_settings(session)).requeue_contact(error.contact_id)
    error.resolved_at = datetime.now(timezone.utc)
    session.commit()
    card = contact_cards(state, [error.contact_id]).get(error.contact_id)
    who = card.label if card else f"Contact {error.contact_id}"
    try:
        schedule_push(state, delay=0)
        tell(
            f"{who} will be sent to Zoho again in a moment; the contact's history shows the "
            "outcome.",
            "success",
        )
    except (redis.RedisError, OSError):
        tell(
            f"{who} is queued again, but the job queue did not answer; it goes with the next "
            "sync (or press Synchronise).",
            "warning",
        )
    return redirect(url_for("zoho_sync.history"))
