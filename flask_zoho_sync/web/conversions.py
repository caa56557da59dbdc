"""Leads converted in Zoho, as the overview shows them: which host contact, what Zoho made
(Contact, Account, Deal, each linking to Zoho's page), and whether the sync followed the
Contact or stopped. (A contact's history links the same records: ``history_page``.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..connection import ConnectedAccount, describe_connection
from ..models import LeadConversion
from ..state import ZohoSyncState
from .history_page import MADE_MODULES, ContactCard, contact_cards, zoho_record_url

#: How many of the latest conversions the overview lists.
OVERVIEW_ROWS = 5


@dataclass(frozen=True)
class MadeRecord:
    kind: str
    zoho_id: str
    url: str | None


@dataclass(frozen=True)
class ConversionRow:
    contact_id: str
    card: ContactCard | None
    lead_id: str
    made: list[MadeRecord]
    followed: bool
    converted_at: Any


def made_records(account: ConnectedAccount | None, made: dict[str, str | None]) -> list[MadeRecord]:
    """What a conversion made, each with its page in Zoho's web UI."""
    return [
        MadeRecord(kind, str(zoho_id), zoho_record_url(account, MADE_MODULES[kind], zoho_id))
        for kind, zoho_id in made.items()
        if zoho_id and kind in MADE_MODULES
    ]


def _rows(state: ZohoSyncState, conversions: Sequence[LeadConversion]) -> list[ConversionRow]:
    account = describe_connection(state.db.session)
    cards = contact_cards(state, [row.contact_id for row in conversions])
    return [
        ConversionRow(
            contact_id=row.contact_id,
            card=cards.get(row.contact_id),
            lead_id=row.lead_id,
            made=made_records(
                account,
                {"Contact": row.contact_zoho_id, "Account": row.account_id, "Deal": row.deal_id},
            ),
            followed=row.outcome == "follow",
            converted_at=row.converted_at or row.recorded_at,
        )
        for row in conversions
    ]


def overview_conversions(state: ZohoSyncState) -> dict[str, Any]:
    """Counts by outcome and the latest few conversions, for the overview's Contacts card."""
    session = state.db.session
    counts = dict(
        session.execute(
            sa.select(LeadConversion.outcome, sa.func.count()).group_by(LeadConversion.outcome)
        ).all()
    )
    latest = session.scalars(
        sa.select(LeadConversion).order_by(LeadConversion.id.desc()).limit(OVERVIEW_ROWS)
    ).all()
    return {
        "followed": int(counts.get("follow", 0)),
        "stopped": int(counts.get("stop", 0)),
        "latest": _rows(state, latest),
    }
