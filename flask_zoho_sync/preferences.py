"""The admin's choices as stored in the database, and the ``Mapping`` built from them.

The mapping editor, the CLI and the sync runs all read the same rows through this module, so
what the admin saw in the editor is exactly what the next run uses.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .adapter import ContactAdapter
from .drift import follow_renamed_fields, remapped, resume_row
from .ledger import Ledger
from .models import FieldMap, SyncSettings
from .sync.coercion import Direction, ZohoField, check_pair
from .sync.mapping import (
    ConflictPolicy,
    FieldMapping,
    GroupMapping,
    Mapping,
    SystemFieldMapping,
    carries_data,
    default_field_mappings,
)
from .sync.modes import ALWAYS, OVERWRITE_POLICIES, SYNC_MODES, TWO_WAY, WINNERS, WriteRules

MODULES = ("Leads", "Contacts")
SYSTEM_KINDS = ("contact_id", "contact_url", "subscription")


def get_settings(session: Session) -> SyncSettings:
    """The single settings row, created with defaults on first use."""
    row = session.scalars(sa.select(SyncSettings).order_by(SyncSettings.id)).first()
    if row is None:
        row = SyncSettings(time_zone="UTC", auto_sync=False, conflict_policy="newest")
        session.add(row)
        session.flush()
    return row


def field_maps(session: Session) -> list[FieldMap]:
    return list(session.scalars(sa.select(FieldMap).order_by(FieldMap.kind, FieldMap.id)))


def zone_of(settings: SyncSettings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def build_mapping(session: Session, adapter: ContactAdapter) -> Mapping:
    """The mapping the next run will use: stored rows, host fields, cached Zoho metadata."""
    settings = get_settings(session)
    if settings.module not in MODULES:
        raise ValueError("No Zoho module is chosen yet: pick Leads or Contacts in the settings.")
    fields: list[FieldMapping] = []
    groups: list[GroupMapping] = []
    system: list[SystemFieldMapping] = []
    for row in field_maps(session):
        if row.kind == "field":
            fields.append(
                FieldMapping(
                    row.host_key,
                    row.zoho_field,
                    direction=row.direction,
                    policy=row.policy,
                    paused=row.paused_reason,
                    value_map=tuple((row.value_map or {}).items()),
                    remapped_at=row.remapped_at,
                )
            )
        elif row.kind == "group":
            groups.append(
                GroupMapping(
                    row.host_key,
                    row.zoho_field,
                    direction=row.direction,
                    policy=row.policy,
                    paused=row.paused_reason,
                    remapped_at=row.remapped_at,
                )
            )
        elif row.kind == "system" and row.host_key in SYSTEM_KINDS:
            system.append(
                SystemFieldMapping(
                    row.host_key,  # type: ignore[arg-type]
                    row.zoho_field,
                    inverted=row.inverted,
                    paused=row.paused_reason,
                    remapped_at=row.remapped_at,
                )
            )
    cached = settings.zoho_fields if settings.zoho_fields_module == settings.module else None
    return Mapping(
        module=settings.module,
        zone=zone_of(settings),
        fields=fields,
        groups=groups,
        system=system,
        host_fields=adapter.fields(),
        zoho_fields=cached or (),
        default_policy=ConflictPolicy(settings.conflict_policy or "newest"),
        email_key=email_key_of(adapter),
    )


def email_key_of(adapter: ContactAdapter) -> str:
    """The host's email column (adapters not built on ``SQLAlchemyAdapter`` say ``email``)."""
    return str(getattr(adapter, "email_attribute", "email"))


def mapping_carries_data(session: Session, adapter: ContactAdapter) -> bool:
    """Whether the saved mapping has a pair beyond identity (``sync.mapping.carries_data``).

    Read from the saved rows, without Zoho's field list, so the pages, the tick and the jobs
    can ask it for free; the engine asks the same rule of the built mapping before it writes.
    """
    email_key = email_key_of(adapter)
    return any(
        carries_data(row.kind, row.host_key, row.zoho_field, email_key=email_key)
        for row in field_maps(session)
    )


def refresh_zoho_fields(
    session: Session, client: Any, settings: SyncSettings
) -> list[dict[str, Any]]:
    """Fetch the module's field metadata from Zoho and cache it on the settings row.

    Cached because the mapping needs it on every run and Zoho charges a credit per call;
    the admin refreshes it from the mapping editor after adding fields in Zoho.
    """
    if settings.module not in MODULES:
        raise ValueError("No Zoho module is chosen yet: pick Leads or Contacts in the settings.")
    fields = client.fields(settings.module)
    settings.zoho_fields = fields
    settings.zoho_fields_module = settings.module
    settings.zoho_fields_fetched_at = datetime.now(timezone.utc)
    follow_renamed_fields(session, fields)
    session.flush()
    return fields


def has_fresh_zoho_fields(settings: SyncSettings, session: Session | None = None) -> bool:
    """Whether the cached metadata is for the chosen module and knows every mapped field
    (a field added in Zoho after the last fetch makes the next run fetch again)."""
    if not settings.zoho_fields or settings.zoho_fields_module != settings.module:
        return False
    if session is None:
        return True
    known = {field.get("api_name") for field in settings.zoho_fields}
    return all(row.zoho_field in known for row in field_maps(session))


def _name_key(name: str) -> str:
    return "".join(character for character in name.lower() if character.isalnum())


#: Zoho fields that, when they exist, are the natural home of a system value.
_SYSTEM_FIELD_NAMES = {
    "contact_id": ("contactid", "hostcontactid", "externalcontactid"),
    "contact_url": ("contacturl", "hostcontacturl", "profileurl"),
}


def add_default_mappings(session: Session, adapter: ContactAdapter, module: str) -> int:
    """Map what can be mapped without asking; returns how many rows were added.

    The standard fields of ``module`` first; then, when Zoho's field metadata is cached,
    custom fields whose name matches a host field (``birthday`` and ``Birthday``) and can
    round-trip, groups to checkboxes of the same name, Contact Id and Contact URL to fields
    named for them, and Subscription Status to ``Email_Opt_Out`` (inverted). Nothing already
    mapped is changed, and no Zoho field is used twice.
    """
    rows = field_maps(session)
    mapped = {(row.kind, row.host_key) for row in rows}
    used_zoho = {row.zoho_field for row in rows}
    proposals: list[FieldMap] = []

    def propose(kind: str, host_key: str, zoho_field: str, **extra: Any) -> None:
        if (kind, host_key) in mapped or zoho_field in used_zoho:
            return
        proposals.append(FieldMap(kind=kind, host_key=host_key, zoho_field=zoho_field, **extra))
        mapped.add((kind, host_key))
        used_zoho.add(zoho_field)

    host_fields = adapter.fields()
    for pair in default_field_mappings(module, host_fields):
        propose("field", pair.host_field, pair.zoho_field, direction=pair.direction.value)
    settings = get_settings(session)
    if has_fresh_zoho_fields(settings):
        zoho_fields = [ZohoField.from_metadata(meta) for meta in settings.zoho_fields or ()]
        custom = {_name_key(field.api_name): field for field in zoho_fields if field.custom}
        for host in host_fields:
            match = custom.get(_name_key(host.name))
            if match and match.writable and check_pair(host, match, Direction.BOTH).ok:
                propose("field", host.name, match.api_name, direction="both")
        for group in adapter.groups():
            match = custom.get(_name_key(group.key))
            if match and match.data_type == "boolean" and match.writable:
                propose("group", group.key, match.api_name, direction="both")
        for kind, names in _SYSTEM_FIELD_NAMES.items():
            match = next((custom[name] for name in names if name in custom), None)
            if match and match.writable:
                propose("system", kind, match.api_name, direction="to_zoho")
        if any(field.api_name == "Email_Opt_Out" for field in zoho_fields) and getattr(
            adapter, "subscribed_attribute", None
        ):
            propose("system", "subscription", "Email_Opt_Out", direction="both", inverted=True)
    session.add_all(proposals)
    session.flush()
    return len(proposals)


class MappingRefused(ValueError):
    """A mapping row the next run would not sync; the message is for the admin, the same
    whichever face (the mapping editor, ``settings --map``) the row came from."""


_KIND_WORDS = {"field": "host field", "group": "group", "system": "system field"}


def _shown(name: str) -> str:
    """A name as a message quotes it: escaped, and cut short when pasted at length."""
    return repr(name if len(name) <= 60 else name[:57] + "...")


def _entry(
    kind: str, host_key: str, zoho_field: str, direction: str, policy: str | None, inverted: bool
) -> FieldMapping | GroupMapping | SystemFieldMapping:
    if kind == "field":
        return FieldMapping(host_key, zoho_field, direction, policy)  # type: ignore[arg-type]
    if kind == "group":
        return GroupMapping(host_key, zoho_field, direction, policy)  # type: ignore[arg-type]
    return SystemFieldMapping(host_key, zoho_field, inverted)  # type: ignore[arg-type]


def check_field_map(
    mapping: Mapping,
    rows: Sequence[FieldMap],
    group_keys: Collection[str],
    *,
    kind: str,
    host_key: str,
    zoho_field: str,
    direction: str = "both",
    policy: str | None = None,
    inverted: bool = False,
) -> list[str]:
    """Refuse a row the next run would not sync (``MappingRefused``), or return its warnings.

    The one judge of a mapping row for every face: a typo gets a plain refusal first, then
    the row is put into the mapping the next run would use (``mapping``, built from the
    stored ``rows``) and the engine's own checks decide, so what is accepted is what syncs.
    The stored row of the same kind and key is the one this row replaces.
    """
    _refuse_unknown_words(mapping, group_keys, kind, host_key, direction, policy)
    _refuse_unfit_zoho_field(mapping, rows, kind, host_key, zoho_field, inverted)
    return _warnings_in_trial_run(
        mapping, _entry(kind, host_key, zoho_field, direction, policy, inverted), kind
    )


def _refuse_unknown_words(
    mapping: Mapping,
    group_keys: Collection[str],
    kind: str,
    host_key: str,
    direction: str,
    policy: str | None,
) -> None:
    """The typos: a kind, host field, group, direction or policy that does not exist."""
    if kind not in _KIND_WORDS:
        raise MappingRefused(f"{_shown(kind)} is not a kind of mapping (field, group, system).")
    what = _KIND_WORDS[kind]
    if kind == "field":
        known = [field.name for field in mapping.host_fields]
    elif kind == "group":
        known = list(group_keys)
    else:
        known = list(SYSTEM_KINDS)
    if host_key not in known:
        choices = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        raise MappingRefused(
            f"This app has no {what} {_shown(host_key)}; choose one of: {choices or 'none'}."
        )
    if direction not in {item.value for item in Direction}:
        raise MappingRefused(f"{_shown(direction)} is not a valid direction.")
    if policy is not None and policy not in {item.value for item in ConflictPolicy}:
        raise MappingRefused(f"{_shown(policy)} is not a valid conflict policy.")


def _refuse_unfit_zoho_field(
    mapping: Mapping,
    rows: Sequence[FieldMap],
    kind: str,
    host_key: str,
    zoho_field: str,
    inverted: bool,
) -> None:
    """A Zoho field that is missing, already taken by another row, or of the wrong kind."""
    if not zoho_field:
        raise MappingRefused("Choose a Zoho field from the list.")
    zoho = mapping.zoho_field(zoho_field)
    if zoho is None:
        raise MappingRefused(
            f"Zoho's {mapping.module} module has no field {_shown(zoho_field)}. If you just "
            "added it in Zoho, refresh the Zoho fields."
        )
    owner = next(
        (
            row
            for row in rows
            if row.zoho_field == zoho_field and (row.kind, row.host_key) != (kind, host_key)
        ),
        None,
    )
    if owner is not None:
        raise MappingRefused(
            f"Zoho field {zoho.api_name} is already mapped (to {owner.kind} {owner.host_key!r}); "
            "a Zoho field can take only one value."
        )
    if kind == "group" and zoho.data_type != "boolean":
        raise MappingRefused(
            f"Groups can map only to Zoho checkbox (boolean) fields; {zoho.api_name} is a "
            f"{zoho.data_type} field."
        )
    if inverted and (kind, host_key) != ("system", "subscription"):
        raise MappingRefused(
            "Only the subscription status can be inverted (for an opt-out checkbox such as "
            "Email_Opt_Out)."
        )


def _warnings_in_trial_run(
    mapping: Mapping, entry: FieldMapping | GroupMapping | SystemFieldMapping, kind: str
) -> list[str]:
    """Put the row into the mapping in place of its stored namesake and let the engine's
    checks judge it: a problem refuses it, warnings about it are returned."""
    attribute = {"field": "fields", "group": "groups", "system": "system"}[kind]
    kept = tuple(item for item in getattr(mapping, attribute) if item.key != entry.key)
    trial = replace(mapping, **{attribute: (*kept, entry)})
    binding = trial.binding(entry.key)
    if binding.problem:
        raise MappingRefused(binding.problem)
    prefix = f"{binding.description}: "
    return [w.removeprefix(prefix) for w in trial.warnings() if w.startswith(prefix)]


def validate_field_map(session: Session, adapter: ContactAdapter, **row: Any) -> list[str]:
    """``check_field_map`` against the stored rows and the mapping the next run would use."""
    return check_field_map(
        build_mapping(session, adapter),
        field_maps(session),
        [group.key for group in adapter.groups()],
        **row,
    )


def set_field_map(
    session: Session,
    *,
    kind: str,
    host_key: str,
    zoho_field: str,
    direction: str = "both",
    policy: str | None = None,
    inverted: bool = False,
) -> FieldMap:
    """Create or replace the mapping row of one host field, group or system field."""
    row = session.scalars(
        sa.select(FieldMap).where(FieldMap.kind == kind, FieldMap.host_key == host_key)
    ).first()
    if row is None:
        row = FieldMap(kind=kind, host_key=host_key)
        session.add(row)
    if row.zoho_field is not None and row.zoho_field != zoho_field:
        remapped(row)  # another field: its id is learnt at the next fields fetch
    row.zoho_field = zoho_field
    row.direction = direction
    row.policy = policy
    row.inverted = inverted
    resume_row(row)
    session.flush()
    return row


def switch_module(session: Session, settings: SyncSettings, module: str) -> int:
    """Point the sync at ``module``; returns how many links were forgotten.

    The watermarks and last-run stamps belong to the old module: kept, the first pull would
    skip every record of the new module not modified since, and the first push every contact
    not edited since. Cleared, the next sync is a full one, which matches again by email.
    """
    settings.module = module
    forgotten = Ledger(session, settings).forget_links_of_other_modules()
    settings.pull_watermark = None
    settings.deleted_watermark = None
    settings.last_pull_at = None
    settings.last_push_at = None
    return forgotten


def sync_mode_of(settings: SyncSettings, default: str = TWO_WAY) -> str:
    """The mode runs use: the one stored on the settings page or by ``settings --mode``,
    else ``ZOHO_SYNC_MODE`` (``default``)."""
    return settings.sync_mode if settings.sync_mode in SYNC_MODES else default


def write_rules(
    session: Session, settings: SyncSettings, default_mode: str = TWO_WAY
) -> WriteRules:
    """The mode and the rows' overwrite policies, as a run applies them (``sync.modes``)."""
    overwrite = {
        f"{row.kind}:{row.host_key}": row.overwrite
        for row in field_maps(session)
        if row.kind in ("field", "group") and row.overwrite in OVERWRITE_POLICIES
    }
    return WriteRules(sync_mode_of(settings, default_mode), tuple(overwrite.items()))


class UnknownMappingRow(ValueError):
    """A field policy named a host field or group that no mapping row maps."""


def mapped_row(session: Session, name: str) -> FieldMap:
    """The field or group row ``name`` names: a host field (``phone``) or ``group:NAME``."""
    kind, _, key = name.partition(":") if name.startswith("group:") else ("field", "", name)
    row = session.scalars(
        sa.select(FieldMap).where(FieldMap.kind == kind, FieldMap.host_key == key)
    ).first()
    if row is None:
        raise UnknownMappingRow(
            f"{name!r} is not mapped: map it first (--map {name}=ZOHO_FIELD, or the Field "
            "mapping page); overwrite policies and winners belong to a field or group row."
        )
    return row


def resync_everything(settings: SyncSettings) -> None:
    """Make the next sync a full one, as a module switch does: every Zoho record is read
    and every contact looked at. A write a mode or an overwrite policy held back is a
    difference the base keeps; an incremental sync would only meet it when the record
    changes again, so a changed mode or policy is applied to every record at once."""
    settings.pull_watermark = None
    settings.last_push_at = None


def set_sync_mode(
    session: Session, settings: SyncSettings, mode: str, default: str = TWO_WAY
) -> bool:
    """Store the sync mode; returns whether the mode runs use changed (``default`` is
    ZOHO_SYNC_MODE's): then the next sync is a full one. Saving the mode config already
    gives changes nothing a run does, so it costs no full sync."""
    if mode not in SYNC_MODES:
        raise ValueError(f"sync mode must be one of {', '.join(SYNC_MODES)}, not {mode!r}")
    changed = sync_mode_of(settings, default) != mode
    settings.sync_mode = mode
    if changed:
        resync_everything(settings)
    session.flush()
    return changed


def store_overwrite(session: Session, row: FieldMap, policy: str | None) -> None:
    """Put ``policy`` (None or "always": always) on ``row``; a change makes the next sync
    full (``resync_everything``)."""
    stored = None if policy in (None, ALWAYS) else policy
    if stored == row.overwrite:
        return
    row.overwrite = stored
    resync_everything(get_settings(session))
    session.flush()


def set_overwrite(session: Session, name: str, policy: str) -> FieldMap:
    """Store the overwrite policy of the row ``name`` names (``sync.modes``)."""
    if policy not in OVERWRITE_POLICIES:
        raise ValueError(
            f"overwrite policy must be one of {', '.join(OVERWRITE_POLICIES)}, not {policy!r}"
        )
    row = mapped_row(session, name)
    store_overwrite(session, row, policy)
    return row


def set_winner(session: Session, name: str, side: str) -> FieldMap:
    """Store who wins a conflict on the row ``name`` names (its conflict policy), over the
    settings' default policy; ``default`` follows that policy again."""
    if side not in WINNERS:
        raise ValueError(f"winner must be one of {', '.join(WINNERS)}, not {side!r}")
    row = mapped_row(session, name)
    row.policy = WINNERS[side]
    session.flush()
    return row
