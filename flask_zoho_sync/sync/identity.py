"""Which Zoho record a host contact is, when Zoho users' doings move it: duplicates Zoho
refuses to create, and records merged away in Zoho.

Both keep the rule the rest of the engine keeps: never a second link to one record and
never a lost host contact. They live here, apart from the pull and push passes, because
they are about identity rather than values, and each pass only asks at one point:

* the push, when Zoho refuses a create with ``DUPLICATE_DATA``: :func:`adopt_duplicate`;
* the pull, before it deletes the contacts of records Zoho deleted: :class:`MergeFollower`.
"""

from __future__ import annotations

from typing import Any

from flask_zoho_sync.sync.context import RESTORE_KEY, PlannedChange

#: The history action of a link the engine moved or made because of a Zoho user's doing.
LINK_ACTION = "link"
#: The history (and error) code of two host contacts that now stand for one Zoho record.
PAIR_CODE = "MERGED_PAIR"


def duplicate_record_id(result: Any) -> str | None:
    """The existing record a ``DUPLICATE_DATA`` answer names (reference §4.5:
    ``details.duplicate_record.id``), or None when the answer names none."""
    if result.code != "DUPLICATE_DATA" or not isinstance(result.details, dict):
        return None
    named = result.details.get("duplicate_record")
    record_id = named.get("id") if isinstance(named, dict) else None
    return str(record_id) if record_id not in (None, "") else None


def adopt_duplicate(push: Any, item: Any, result: Any, batch: Any) -> bool:
    """Link a new contact to the record Zoho says already holds its unique value, instead
    of failing it; True if it did.

    Zoho refused to create the record because another record holds the contact's value of
    a unique field (often Email): that record is the contact. It is linked only if no other
    contact is linked to it (a second link is never made; the refusal then stands, with
    its reason). The link is marked to restore, and the contact queued, so the next push
    writes the contact's values into the record, as an upsert matching on Email would have.
    """
    zoho_id = duplicate_record_id(result)
    if item.link is not None or zoho_id is None:
        return False
    owner = batch.fresh[zoho_id]["contact_id"] if zoho_id in batch.fresh else None
    if owner is None:
        claimed = push.ledger.links_in_module(push.module, zoho_ids=[zoho_id]).get(zoho_id)
        owner = claimed.contact_id if claimed is not None else None
    if owner is not None:
        return False
    field_name = result.details.get("api_name") or "a unique field"
    reason = (
        f"Zoho refused to create it (DUPLICATE_DATA): record {zoho_id} already has this "
        f"contact's {field_name}; linked to that record, which the next sync updates"
    )
    push.report.add(PlannedChange("to_zoho", LINK_ACTION, item.contact_id, zoho_id, reason=reason))
    if push.dry_run:
        return True
    row = push.ledger.new_link_row(
        item.contact_id, zoho_id, {RESTORE_KEY: True}, None, module=push.module
    )
    batch.new_links.append(row)
    batch.fresh[zoho_id] = row
    batch.finished.extend(item.entries)
    batch.resolved.append(item.contact_id)
    push.ledger.requeue_contact(item.contact_id)
    push.ledger.record(
        push.engine.run,
        direction="to_zoho",
        action=LINK_ACTION,
        contact_id=item.contact_id,
        zoho_id=zoho_id,
        reason=reason,
        error_code="DUPLICATE_DATA",
    )
    return True
