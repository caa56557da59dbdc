"""The "Merged in Zoho" page: contacts paired by a merge in Zoho, and the admin's choice.

A Zoho user merged the records of two linked contacts; the sync kept both contacts and
left one unlinked (``pairs``). This page lists the open pairs, each with its two ways out:
merge the contacts through the host's adapter (offered only when the host has one), or
keep both.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from ..adapter import ContactMergeUnavailable
from ..pairs import NoSuchPair, PairNotOpen, keep_both, merge_pair, open_pairs
from ..state import ZohoSyncState
from .blueprint import bp, sync_state
from .history_page import contact_cards
from .messages import tell


@bp.get("/identity")
def identity() -> ResponseReturnValue:
    state = sync_state()
    pairs = open_pairs(state.db.session)
    cards = contact_cards(state, [c for pair in pairs for c in (pair.linked, pair.unlinked)])
    return render_template(
        "zoho_sync/identity.html",
        pairs=pairs,
        cards=cards,
        can_merge=state.adapter.can_merge_contacts,
    )


def _who(state: ZohoSyncState, contact_id: str) -> str:
    card = contact_cards(state, [contact_id]).get(contact_id)
    return card.label if card else f"Contact {contact_id}"


@bp.post("/identity/<zoho_sync_id:history_id>/merge")
def identity_merge(history_id: int) -> ResponseReturnValue:
    state = sync_state()
    try:
        pair = merge_pair(state, history_id)
    except NoSuchPair:
        abort(404)
    except (PairNotOpen, ContactMergeUnavailable) as exc:
        tell(str(exc), "warning")
    else:
        tell(
            f"Merged contact {pair.unlinked} into {_who(state, pair.linked)}; it stays linked "
            "to the merged Zoho record.",
            "success",
        )
    return redirect(url_for("zoho_sync.identity"))


@bp.post("/identity/<zoho_sync_id:history_id>/keep")
def identity_keep(history_id: int) -> ResponseReturnValue:
    state = sync_state()
    try:
        pair = keep_both(state, history_id)
    except NoSuchPair:
        abort(404)
    except PairNotOpen as exc:
        tell(str(exc), "warning")
    else:
        tell(
            f"Kept both: {_who(state, pair.unlinked)} stays in the app, unlinked from Zoho.",
            "success",
        )
    return redirect(url_for("zoho_sync.identity"))
