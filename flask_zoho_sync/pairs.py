"""Host contacts paired by a merge in Zoho, and the admin's two ways out.

When a Zoho user merges the records of two linked contacts, the pull keeps both contacts,
leaves the one whose record vanished unlinked, and records an open ``MERGED_PAIR`` error
naming the other (``sync/identity.py``). The admin then decides, on the overview:

* **merge** the two contacts in the host, through the adapter's ``merge_contacts`` (only
  the host knows what a contact owns); the kept contact stays linked to the merged record;
* **keep both**: the unlinked contact stays in the host, unlinked, and the error is closed.

Shared by the admin pages (and usable from the CLI), so it sits with the other services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from .dbids import row_by_id
from .models import RecordHistory
from .state import ZohoSyncState
from .sync.identity import PAIR_CODE


@dataclass(frozen=True)
class Pair:
    """One open pair: ``unlinked`` lost its record to a merge into ``linked``'s."""

    history_id: int
    unlinked: str
    linked: str
    zoho_id: str | None
    former_zoho_id: str | None
    found_at: datetime
    reason: str | None


class PairNotOpen(LookupError):
    """The pair was decided already (or never existed): nothing to do."""


class NoSuchPair(PairNotOpen):
    """No history row of that id records a pair: the page answers 404, as for any id no
    row has."""


def open_pairs(session: Any) -> list[Pair]:
    rows = session.scalars(
        sa.select(RecordHistory)
        .where(
            RecordHistory.action == "error",
            RecordHistory.error_code == PAIR_CODE,
            RecordHistory.resolved_at.is_(None),
        )
        .order_by(RecordHistory.id)
    )
    return [_pair(row) for row in rows]


def _pair(row: RecordHistory) -> Pair:
    changes = row.changes or {}
    return Pair(
        history_id=row.id,
        unlinked=str(row.contact_id),
        linked=str(changes.get("pair_contact_id")),
        zoho_id=row.zoho_id,
        former_zoho_id=changes.get("former_zoho_id"),
        found_at=row.created_at,
        reason=row.reason,
    )


def _open_row(session: Any, history_id: int) -> RecordHistory:
    row = row_by_id(session, RecordHistory, history_id)
    if row is None or row.error_code != PAIR_CODE:
        raise NoSuchPair(f"No pair {history_id}.")
    if row.resolved_at is not None:
        raise PairNotOpen(f"No open pair {history_id}: it was decided already.")
    return row


def keep_both(state: ZohoSyncState, history_id: int) -> Pair:
    """Close the pair: both contacts stay, the unlinked one unlinked."""
    session = state.db.session
    row = _open_row(session, history_id)
    row.resolved_at = datetime.now(timezone.utc)
    session.add(
        RecordHistory(
            contact_id=row.contact_id,
            zoho_id=row.zoho_id,
            direction="to_host",
            action="keep",
            error_code=PAIR_CODE,  # keeps the contact unlinked (``Ledger.held_unlinked``)
            changes=dict(row.changes or {}),
            reason="The admin kept both contacts after the merge in Zoho; this one unlinked.",
        )
    )
    session.commit()
    return _pair(row)


def merge_pair(state: ZohoSyncState, history_id: int) -> Pair:
    """Merge the unlinked contact into the linked one through the host's adapter.

    Raises ``ContactMergeUnavailable`` (nothing changed) when the host has no merge; the
    adapter's own errors roll the session back and propagate, the pair left open.
    """
    session = state.db.session
    row = _open_row(session, history_id)
    pair = _pair(row)
    adapter = state.adapter
    found = adapter.get_many([pair.linked, pair.unlinked])
    keep, other = found.get(pair.linked), found.get(pair.unlinked)
    if keep is None or other is None:
        raise PairNotOpen("One of the two contacts no longer exists; keep both to close it.")
    try:
        # Captured as any host edit: the kept contact's new values reach Zoho with the next
        # push; the merged-away contact has no link, so its deletion asks nothing of Zoho.
        adapter.merge_contacts(keep, other)
        row.resolved_at = datetime.now(timezone.utc)
        session.add(
            RecordHistory(
                contact_id=pair.unlinked,
                zoho_id=pair.zoho_id,
                direction="to_host",
                action="merge",
                changes={"into_contact_id": pair.linked},
                reason=f"Merged into contact {pair.linked} by the admin, as Zoho merged "
                "their records.",
            )
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return pair
