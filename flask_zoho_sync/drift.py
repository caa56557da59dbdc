"""Keeping the stored mapping rows true to Zoho's fields as a Zoho admin changes them.

Three things a run needs before it trusts the cached field list (issue 19):

* the list must be recent: Zoho's ``GET /settings/fields`` documents no conditional request
  (no If-Modified-Since, no ETag; docs/zoho-api-notes.md, "Field changes"), so the cache has
  an age limit, ``ZOHO_SYNC_FIELDS_MAX_AGE``, and costs one call per period, not per run;
* a field renamed in Zoho keeps its ``id``: each row stores the id of its field, and a row
  whose api_name left the list follows the id to the new name;
* a row Zoho refused as a whole (``sync.drift``) stays paused until the admin saves it
  again: the refusal is the only evidence, so only the admin's fix lifts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .models import FieldMap, SyncSettings
from .sync.coercion import ZohoField, check_pair
from .sync.mapping import Binding, Mapping


class ValueMapRefused(ValueError):
    """A value map the sync could not use, in words that say what to write instead."""


def check_value_map(pairs: dict[str, str], zoho: ZohoField | None) -> dict[str, str] | None:
    """``pairs`` (host value -> Zoho value) if every Zoho value is one Zoho's picklist
    offers, else ``ValueMapRefused``: every record carrying another would be refused."""
    offered = set(zoho.picklist_values) if zoho is not None else set()
    unknown = sorted(value for value in pairs.values() if offered and value not in offered)
    if zoho is not None and unknown:
        choices = ", ".join(value for value in zoho.picklist_values if value != "-None-")
        raise ValueMapRefused(
            f"Zoho's picklist for {zoho.api_name} has no {', '.join(map(repr, unknown))}; "
            f"it offers {choices}."
        )
    return pairs or None


def fields_outdated(settings: SyncSettings, max_age: float, now: datetime | None = None) -> bool:
    """Whether the cached field list is older than ``max_age`` seconds (0: every run)."""
    fetched = settings.zoho_fields_fetched_at
    if fetched is None:
        return True
    if fetched.tzinfo is None:  # SQLite hands back naive UTC
        fetched = fetched.replace(tzinfo=timezone.utc)
    return (now or datetime.now(timezone.utc)) - fetched >= timedelta(seconds=max_age)


def follow_renamed_fields(session: Session, fields: Sequence[dict[str, Any]]) -> list[str]:
    """Record each row's Zoho field id, and move rows whose field was renamed in Zoho.

    Returns what moved, in words, for the caller to log. A row whose name and id are both
    gone keeps its name: the mapping then shows it as an unknown Zoho field (paused).
    """
    by_name = {meta.get("api_name"): meta for meta in fields if isinstance(meta, dict)}
    by_id = {
        str(meta.get("id")): meta for meta in fields if isinstance(meta, dict) and meta.get("id")
    }
    moved: list[str] = []
    for row in session.scalars(sa.select(FieldMap)):
        meta = by_name.get(row.zoho_field)
        if meta is None and row.zoho_field_id and row.zoho_field_id in by_id:
            meta = by_id[row.zoho_field_id]
            if any(other.zoho_field == meta["api_name"] for other in _rows(session)):
                continue  # the new name is mapped already: leave the clash to the admin
            moved.append(f"{row.zoho_field} was renamed in Zoho to {meta['api_name']}")
            row.zoho_field = str(meta["api_name"])
        if meta is None or not meta.get("id"):
            continue
        if row.zoho_field_id and row.zoho_field_id != str(meta["id"]):
            # Deleted and made again under the same name: a new, empty field.
            moved.append(f"{row.zoho_field} was deleted in Zoho and created again")
            remapped(row)
        row.zoho_field_id = str(meta["id"])
    return moved


def pause_rows_zoho_refuses(session: Session, mapping: Mapping) -> list[FieldMap]:
    """Pause the rows the fresh field list no longer takes (field gone, type incompatible,
    read-only for a row writing to Zoho), with the mapping's reason; returns the rows paused
    now (those paused before are not announced again).

    Stored, not only worked out per build, so the row stays paused when the field comes
    back until the admin saves it: a field made again, or retyped and back, is empty in
    Zoho, and resuming (``resume_row``) makes the merge take the key as newly mapped, so
    that emptiness never blanks the host's value.
    """
    if not mapping.zoho_fields:
        return []  # nothing to judge by: the mapping says the list is not loaded
    host_names = {host.name for host in mapping.host_fields}
    rows = {f"{row.kind}:{row.host_key}": row for row in _rows(session)}
    paused: list[FieldMap] = []
    for binding in mapping.bindings:
        row = rows.get(binding.key)
        if binding.problem is None or row is None or row.paused_reason is not None:
            continue
        if _zoho_refuses(binding, host_names):
            row.paused_reason = (
                f"paused: {binding.problem}. Host values are kept; fix the field in Zoho or "
                "map another, then save the row to resume it."
            )
            paused.append(row)
    return paused


def _zoho_refuses(binding: Binding, host_names: set[str]) -> bool:
    """Whether the binding's problem is on Zoho's side (not an unknown host field)."""
    if binding.kind == "field" and binding.host.name not in host_names:
        return False
    if binding.zoho is None:
        return True
    return not check_pair(binding.host, binding.zoho, binding.direction).ok


def _rows(session: Session) -> list[FieldMap]:
    return list(session.scalars(sa.select(FieldMap)))


def remapped(row: FieldMap) -> None:
    """The row now writes another (or a re-made) Zoho field: what links hold for it from
    before is no base for the merge (``Mapping.stale_keys``), so a host value is never
    taken as "changed in Zoho to blank"."""
    row.zoho_field_id = None
    row.remapped_at = datetime.now(timezone.utc)


def resume_row(row: FieldMap) -> bool:
    """The admin saved the row: a pause from a refusal is lifted (the next write tells
    whether the fix holds), and what links hold for it from before the pause is no base
    (values held back while paused differ from it). The pause from the field list needs no
    lifting: it is worked out afresh by every mapping build. Returns whether a pause was
    lifted (the caller announces it: ``signals.field_resumed``)."""
    if row.paused_reason is None:
        return False
    row.paused_reason = None
    row.remapped_at = datetime.now(timezone.utc)
    return True


def paused_rows(session: Session) -> list[FieldMap]:
    """Rows paused after Zoho refused their field, for the overview."""
    return list(
        session.scalars(
            sa.select(FieldMap).where(FieldMap.paused_reason.is_not(None)).order_by(FieldMap.id)
        )
    )
