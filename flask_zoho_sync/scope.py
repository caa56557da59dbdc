"""What syncs, as stored: the ``zoho_sync_scope`` row the "What syncs" page and
``settings --scope-*`` write, with the ``ZOHO_SYNC_SCOPE_*`` config as its defaults.

Every face saves through :func:`save_scope` and every run reads :func:`read_scope`, so what
the admin saw is what the next run applies; the rules themselves live in ``sync.scope``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .adapter import ContactAdapter
from .models import RecordHistory, SyncScope, SyncSettings
from .sync.scope import (
    AMBIGUOUS,
    Scope,
    ScopeRefused,
    parse_match_key,
    parse_on_leave,
    parse_zoho_scope,
    zoho_scope_text,
)

#: The history error codes the page lists as matches the sync would not guess.
UNMATCHED_CODES = (AMBIGUOUS, "DUPLICATE_IN_ZOHO")


def _groups_of(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    return tuple(dict.fromkeys(str(part).strip() for part in value or () if str(part).strip()))


def scope_from_config(config: Mapping[str, Any]) -> Scope:
    """The scope the app's config gives, before any page or CLI saved one."""
    return Scope(
        host_groups=_groups_of(config.get("ZOHO_SYNC_SCOPE_GROUPS")),
        host_filter=(str(config.get("ZOHO_SYNC_SCOPE_FILTER") or "").strip() or None),
        zoho=parse_zoho_scope(config.get("ZOHO_SYNC_SCOPE_ZOHO")),
        on_leave=parse_on_leave(config.get("ZOHO_SYNC_SCOPE_ON_LEAVE")),
        match_key=parse_match_key(config.get("ZOHO_SYNC_MATCH_KEY")),
    )


def scope_row(session: Session) -> SyncScope | None:
    return session.scalars(sa.select(SyncScope).order_by(SyncScope.id)).first()


def read_scope(session: Session, config: Mapping[str, Any]) -> Scope:
    """The scope the next run applies: the saved row, else the config."""
    row = scope_row(session)
    if row is None:
        return scope_from_config(config)
    return Scope(
        host_groups=_groups_of(row.host_groups),
        host_filter=row.host_filter or None,
        zoho=parse_zoho_scope(row.zoho_conditions),
        on_leave=parse_on_leave(row.on_leave),
        match_key=parse_match_key(row.match_key),
    )


def scope_fingerprint(session: Session) -> tuple[Any, ...] | None:
    """The stored scope as plain values, read past the session's copy, for the ledger's
    settings fingerprint (a run stops when it changes under it)."""
    row = session.execute(
        sa.select(
            SyncScope.host_groups,
            SyncScope.host_filter,
            SyncScope.zoho_conditions,
            SyncScope.on_leave,
            SyncScope.match_key,
        ).order_by(SyncScope.id)
    ).first()
    if row is None:
        return None
    groups, *rest = tuple(row)
    return (tuple(groups or ()), *rest)


def check_scope(scope: Scope, adapter: ContactAdapter) -> None:
    """Refuse (``ScopeRefused``) a scope naming a group, filter or field the app lacks."""
    known_groups = {group.key for group in adapter.groups()}
    unknown = [group for group in scope.host_groups if group not in known_groups]
    if unknown:
        choices = ", ".join(sorted(known_groups)) or "none"
        raise ScopeRefused(f"This app has no group {unknown[0]!r}; choose one of: {choices}.")
    if scope.host_filter and scope.host_filter not in adapter.scope_filters():
        choices = ", ".join(adapter.scope_filters()) or "none (the app defines none)"
        raise ScopeRefused(
            f"This app has no scope filter {scope.host_filter!r}; choose one of: {choices}."
        )
    field = scope.match_field
    if field is not None and field not in {item.name for item in adapter.fields()}:
        raise ScopeRefused(f"This app has no field {field!r} to match on.")


def save_scope(
    session: Session,
    settings: SyncSettings,
    adapter: ContactAdapter,
    config: Mapping[str, Any],
    *,
    host_groups: Sequence[str] | str | None = None,
    host_filter: str | None = None,
    zoho_conditions: str | None = None,
    on_leave: str | None = None,
    match_key: str | None = None,
) -> bool:
    """Save the scope (arguments left None keep their current value); returns whether it
    changed. A changed scope makes the next sync a full one (watermarks cleared, as a
    module switch does): contacts and records that just entered it changed nothing on
    their own, so an incremental run would never see them."""
    current = read_scope(session, config)
    wanted = Scope(
        host_groups=current.host_groups if host_groups is None else _groups_of(host_groups),
        host_filter=(current.host_filter if host_filter is None else (host_filter.strip() or None)),
        zoho=current.zoho if zoho_conditions is None else parse_zoho_scope(zoho_conditions),
        on_leave=current.on_leave if on_leave is None else parse_on_leave(on_leave),
        match_key=current.match_key if match_key is None else parse_match_key(match_key),
    )
    check_scope(wanted, adapter)
    row = scope_row(session)
    if row is None:
        row = SyncScope()
        session.add(row)
    row.host_groups = list(wanted.host_groups)
    row.host_filter = wanted.host_filter
    row.zoho_conditions = zoho_scope_text(wanted.zoho) or None
    row.on_leave = wanted.on_leave
    row.match_key = wanted.match_key
    changed = wanted.fingerprint() != current.fingerprint()
    if changed:
        settings.pull_watermark = None
        settings.deleted_watermark = None
        settings.last_pull_at = None
        settings.last_push_at = None
    session.flush()
    return changed


def unmatched_records(session: Session, limit: int = 200) -> list[RecordHistory]:
    """Records a first sync found more than one counterpart for and left unlinked, newest
    first, while not resolved: the admin settles each (merge the duplicates, or give one a
    different key), and the next sync links it."""
    return list(
        session.scalars(
            sa.select(RecordHistory)
            .where(
                RecordHistory.action == "error",
                RecordHistory.error_code.in_(UNMATCHED_CODES),
                RecordHistory.resolved_at.is_(None),
            )
            .order_by(RecordHistory.id.desc())
            .limit(limit)
        )
    )
