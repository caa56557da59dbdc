"""The mapping editor's model: what each section shows and which edits are accepted.

Every edit is judged by building the ``Mapping`` the next run would use with the edit
applied (``preferences.build_mapping`` plus the change, in memory) and looking at that row's
binding: what the editor accepts is exactly what the engine will sync, with the reasons
``check_pair`` gives. Only then is the row written.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import datetime, timezone
from difflib import SequenceMatcher
from typing import Any, Literal

from sqlalchemy.orm import Session

from ..adapter import ContactAdapter, HostGroup
from ..connection import ConnectedAccount, describe_connection
from ..drift import ValueMapRefused, check_value_map, resume_row
from ..models import FieldMap, SyncSettings
from ..preferences import (
    MODULES,
    SYSTEM_KINDS,
    MappingRefused,
    build_mapping,
    check_field_map,
    field_maps,
    get_settings,
    store_overwrite,
)
from ..sync import (
    ConflictPolicy,
    Direction,
    HostField,
    Mapping,
    ZohoField,
)
from ..sync.coercion import check_pair
from ..sync.mapping import default_field_mappings
from ..sync.modes import ALWAYS, OVERWRITE_LABELS

Kind = Literal["field", "group", "system"]
KINDS: tuple[Kind, ...] = ("field", "system", "group")

DIRECTION_LABELS = {
    Direction.BOTH.value: "Both ways",
    Direction.TO_ZOHO.value: "To Zoho only",
    Direction.TO_HOST.value: "To this site only",
}
#: "" is "follow the default policy chosen in the settings".
POLICY_LABELS = {
    "": "Default",
    ConflictPolicy.NEWEST.value: "Newest wins",
    ConflictPolicy.HOST_WINS.value: "This site wins",
    ConflictPolicy.ZOHO_WINS.value: "Zoho wins",
}
SYSTEM_LABELS = {
    "contact_id": "Contact Id",
    "contact_url": "Contact URL",
    "subscription": "Subscription status",
}
SYSTEM_HELP = {
    "contact_id": "This site's id of the contact, written to Zoho. A unique Zoho field makes "
    "retried creates safe.",
    "contact_url": "A link back to the contact on this site, written to Zoho.",
    "subscription": "Whether the contact accepts email, both ways. Tick 'inverted' for an "
    "opt-out checkbox such as Email_Opt_Out.",
}


#: An edit that would not sync; the message is shown next to the form (and is the one
#: ``settings --map`` prints for the same row).
Refused = MappingRefused

#: Zoho fields about the record rather than the person: who owns it, who made or changed it
#: and when, its tags and layout. Mapping one is possible, but never a sensible proposal:
#: "Lead Owner" proposed for a first name was how the editor used to greet an admin.
RECORD_FIELDS = frozenset(
    {
        "Owner",
        "Created_By",
        "Modified_By",
        "Created_Time",
        "Modified_Time",
        "Last_Activity_Time",
        "Last_Enriched_Time__s",
        "Tag",
        "Layout",
        "Record_Image",
        "Full_Name",
        "Converted__s",
        "Converted_Date_Time",
        "Record_Status__s",
        "Locked__s",
        "Unsubscribed_Mode",
        "Unsubscribed_Time",
        "Change_Log_Time__s",
        "Data_Processing_Basis",
    }
)
#: Zoho types that hold users or values Zoho computes: never proposed either.
RECORD_TYPES = frozenset(
    {"ownerlookup", "userlookup", "autonumber", "formula", "profileimage", "rollup_summary"}
)
#: How closely names must agree (0-1) before a Zoho field is proposed for a host field.
NAME_MATCH = 0.6
#: Zoho field names that are the natural home of each system value.
SYSTEM_NAMES = {
    "contact_id": ("contactid", "hostcontactid", "externalcontactid", "contact_id"),
    "contact_url": ("contacturl", "hostcontacturl", "profileurl"),
    "subscription": ("emailoptout", "unsubscribed", "optout"),
}


class FieldRefused(MappingRefused):
    """A refusal that names the form field at fault (``host_key``, ``zoho_field``,
    ``direction``, ``policy``), so the editor can mark it and keep what was typed."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _name_key(name: str) -> str:
    return "".join(character for character in name.lower() if character.isalnum())


def _read_only_in(meta: MappingABC[str, Any]) -> bool:
    """Zoho's own word that the field cannot be written: the API operations, or the
    ``read_only`` / ``field_read_only`` flags of its metadata."""
    operations = meta.get("operation_type")
    if isinstance(operations, MappingABC) and not (
        operations.get("api_create") and operations.get("api_update")
    ):
        return True
    return bool(meta.get("read_only")) or bool(meta.get("field_read_only"))


@dataclass(frozen=True)
class Row:
    """One stored mapping row as the editor shows it."""

    record: FieldMap
    host_label: str
    zoho: ZohoField | None
    problem: str | None

    @property
    def zoho_label(self) -> str:
        if self.zoho is None:
            return self.record.zoho_field
        return f"{self.zoho.label} ({self.zoho.api_name})"


@dataclass
class Editor:
    """Everything one render of the editor needs, read once per request."""

    settings: SyncSettings
    account: ConnectedAccount | None
    host_fields: list[HostField]
    groups: list[HostGroup]
    rows: list[FieldMap]
    zoho_fields: list[ZohoField]
    mapping: Mapping | None
    #: Section -> message shown next to that section's forms after an edit.
    messages: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Zoho fields its metadata calls read-only: offered for the to-this-site direction only.
    read_only: frozenset[str] = frozenset()
    #: What the admin typed in a form that was refused, by form ("field", "row-12", ...),
    #: so the form comes back as they left it.
    typed: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The form field at fault in a refused form, by form.
    invalid: dict[str, str] = field(default_factory=dict)

    # -- what is missing ---------------------------------------------------------------

    @property
    def module(self) -> str | None:
        return self.settings.module if self.settings.module in MODULES else None

    @property
    def fetched_at(self) -> datetime | None:
        return self.settings.zoho_fields_fetched_at if self.zoho_fields else None

    @property
    def empty_reason(self) -> str | None:
        """Why nothing can be mapped yet: ``no_module``, ``not_connected``, ``no_zoho_fields``."""
        if self.module is None:
            return "no_module"
        if not self.zoho_fields:
            return "not_connected" if self.account is None else "no_zoho_fields"
        return None

    # -- lookups ------------------------------------------------------------------------

    def zoho_field(self, api_name: str) -> ZohoField | None:
        return next((z for z in self.zoho_fields if z.api_name == api_name), None)

    def rows_of(self, kind: Kind) -> list[Row]:
        labels = self._host_labels(kind)
        shown = []
        for record in self.rows:
            if record.kind != kind:
                continue
            problem = None
            if self.mapping is not None:
                try:
                    problem = self.mapping.binding(f"{kind}:{record.host_key}").problem
                except KeyError:
                    problem = "this row is not used (mapped twice or unknown)"
            shown.append(
                Row(
                    record=record,
                    host_label=labels.get(record.host_key, record.host_key),
                    zoho=self.zoho_field(record.zoho_field),
                    problem=problem,
                )
            )
        return shown

    def _host_labels(self, kind: Kind) -> dict[str, str]:
        if kind == "field":
            return {f.name: f.label for f in self.host_fields}
        if kind == "group":
            return {g.key: g.label for g in self.groups}
        return dict(SYSTEM_LABELS)

    def mapped_keys(self, kind: Kind) -> set[str]:
        return {row.host_key for row in self.rows if row.kind == kind}

    @property
    def used_zoho_fields(self) -> set[str]:
        return {row.zoho_field for row in self.rows}

    # -- what the add forms offer -------------------------------------------------------

    def free_host_fields(self) -> list[HostField]:
        taken = self.mapped_keys("field")
        return [f for f in self.host_fields if f.name not in taken]

    def free_groups(self) -> list[HostGroup]:
        taken = self.mapped_keys("group")
        return [g for g in self.groups if g.key not in taken]

    def free_system_kinds(self) -> list[str]:
        taken = self.mapped_keys("system")
        return [kind for kind in SYSTEM_KINDS if kind not in taken]

    def free_zoho_fields(self, *, boolean_only: bool = False) -> list[ZohoField]:
        used = self.used_zoho_fields
        return [
            z
            for z in self.zoho_fields
            if z.api_name not in used and (not boolean_only or z.data_type == "boolean")
        ]

    def is_read_only(self, api_name: str) -> bool:
        zoho = self.zoho_field(api_name)
        return api_name in self.read_only or (zoho is not None and not zoho.writable)

    def zoho_choices(self, kind: Kind) -> tuple[list[ZohoField], list[ZohoField]]:
        """The free Zoho fields an add form offers: (writable, read-only). System values are
        written to Zoho, so they are offered writable fields only."""
        free = self.free_zoho_fields(boolean_only=kind == "group")
        writable = [z for z in free if not self.is_read_only(z.api_name)]
        if kind == "system":
            return writable, []
        return writable, [z for z in free if self.is_read_only(z.api_name)]

    def typed_value(self, form: str, name: str, default: str = "") -> str:
        return self.typed.get(form, {}).get(name, default)

    def chosen_host_key(self, kind: Kind) -> str:
        """The host field (group, system value) an add form has selected."""
        typed = self.typed_value(kind, "host_key")
        if kind == "field":
            keys = [f.name for f in self.free_host_fields()]
        elif kind == "group":
            keys = [g.key for g in self.free_groups()]
        else:
            keys = self.free_system_kinds()
        if typed in keys:
            return typed
        return keys[0] if keys else ""

    def chosen_zoho_field(self, kind: Kind) -> str:
        """The Zoho field an add form has selected: what was typed, else the proposal."""
        if kind in self.typed and "zoho_field" in self.typed[kind]:
            return self.typed[kind]["zoho_field"]
        return self.proposal(kind, self.chosen_host_key(kind)) or ""

    def direction_choices(self, kind: Kind) -> dict[str, str]:
        """Directions the add form offers for its chosen Zoho field: a read-only field can
        only be copied to this site."""
        chosen = self.chosen_zoho_field(kind)
        if chosen and self.is_read_only(chosen):
            return {Direction.TO_HOST.value: DIRECTION_LABELS[Direction.TO_HOST.value]}
        return dict(DIRECTION_LABELS)

    def proposal(self, kind: Kind, host_key: str) -> str | None:
        """The Zoho field to propose for ``host_key``: the module's standard pair when it is
        free, else the best match by name among fields of a type that can hold the value.
        Never a field about the record (owner, creator, times) and none when nothing matches
        well: an empty choice is better than a wrong one."""
        if not host_key or self.module is None:
            return None
        free = {
            z.api_name: z
            for z in self.free_zoho_fields(boolean_only=kind == "group")
            if z.api_name not in RECORD_FIELDS and z.data_type not in RECORD_TYPES
        }
        if kind == "system":
            names = SYSTEM_NAMES.get(host_key, ())
            for zoho in free.values():
                if self.is_read_only(zoho.api_name):
                    continue
                named = _name_key(zoho.api_name) in names or _name_key(zoho.label) in names
                if named and (host_key != "subscription" or zoho.data_type == "boolean"):
                    return zoho.api_name
            return None
        host = None
        if kind == "field":
            host = next((f for f in self.host_fields if f.name == host_key), None)
            if host is None:
                return None
            for pair in default_field_mappings(self.module, [host]):  # type: ignore[arg-type]
                if pair.zoho_field in free:
                    return pair.zoho_field
            label = host.label
        else:
            label = next((g.label for g in self.groups if g.key == host_key), host_key)
        best: tuple[float, str] | None = None
        for zoho in free.values():
            likeness = max(
                SequenceMatcher(None, _name_key(host_key), _name_key(zoho.api_name)).ratio(),
                SequenceMatcher(None, _name_key(label), _name_key(zoho.label)).ratio(),
            )
            if likeness < NAME_MATCH:
                continue
            score = likeness
            if host is not None:
                both = check_pair(host, zoho, Direction.BOTH).ok and not self.is_read_only(
                    zoho.api_name
                )
                if both:
                    score += 1.0
                elif check_pair(host, zoho, Direction.TO_HOST).ok:
                    score += 0.5
                else:
                    continue  # the type cannot hold the value either way
            if best is None or score > best[0]:
                best = (score, zoho.api_name)
        return best[1] if best else None

    @property
    def problems(self) -> list[str]:
        return self.mapping.problems() if self.mapping is not None else []

    @property
    def warnings(self) -> list[str]:
        return self.mapping.warnings() if self.mapping is not None else []


def load_editor(session: Session, adapter: ContactAdapter) -> Editor:
    settings = get_settings(session)
    cached = (
        settings.zoho_fields
        if settings.module in MODULES and settings.zoho_fields_module == settings.module
        else None
    )
    zoho_fields = [ZohoField.from_metadata(meta) for meta in cached or ()]
    mapping = build_mapping(session, adapter) if zoho_fields else None
    read_only = frozenset(str(meta["api_name"]) for meta in cached or () if _read_only_in(meta))
    return Editor(
        read_only=read_only,
        settings=settings,
        account=describe_connection(session),
        host_fields=adapter.fields(),
        groups=adapter.groups(),
        rows=field_maps(session),
        zoho_fields=zoho_fields,
        mapping=mapping,
    )


# -- judging an edit ---------------------------------------------------------------------


def judge(editor: Editor, kind: Kind, proposal: dict[str, Any]) -> list[str]:
    """Refuse the proposal with the shared reason (``preferences.check_field_map``), naming
    the form field at fault, or return its warnings."""
    assert editor.mapping is not None
    zoho_name = proposal["zoho_field"]
    direction = (
        Direction(proposal["direction"]) if proposal["direction"] in DIRECTION_LABELS else None
    )
    if (
        zoho_name
        and editor.zoho_field(zoho_name) is not None
        and editor.is_read_only(zoho_name)
        and (direction is None or direction.writes_zoho)
    ):
        if kind == "system":
            raise FieldRefused(
                f"Zoho does not let the API write {zoho_name}; the sync writes this value to "
                "Zoho, so choose a field Zoho lets it write.",
                "zoho_field",
            )
        raise FieldRefused(
            f"Zoho does not let the API write {zoho_name} (it is read-only in Zoho); choose "
            f"“{DIRECTION_LABELS[Direction.TO_HOST.value]}” to copy it to this site.",
            "direction",
        )
    try:
        return check_field_map(
            editor.mapping,
            editor.rows,
            [group.key for group in editor.groups],
            kind=kind,
            **proposal,
        )
    except FieldRefused:
        raise
    except MappingRefused as refusal:
        raise FieldRefused(str(refusal), _field_at_fault(editor, kind, proposal)) from None


def _field_at_fault(editor: Editor, kind: Kind, proposal: dict[str, Any]) -> str:
    """Which form field a refusal of ``proposal`` is about, from the facts it broke."""
    host_key = proposal["host_key"]
    if kind == "field" and host_key not in {f.name for f in editor.host_fields}:
        return "host_key"
    if kind == "group" and host_key not in {g.key for g in editor.groups}:
        return "host_key"
    if proposal["direction"] not in DIRECTION_LABELS:
        return "direction"
    if (proposal["policy"] or "") not in POLICY_LABELS:
        return "policy"
    if proposal.get("inverted") and (kind, host_key) != ("system", "subscription"):
        return "inverted"
    zoho = editor.zoho_field(proposal["zoho_field"])
    if (
        zoho is not None
        and kind == "field"
        and not zoho.writable
        and Direction(proposal["direction"]).writes_zoho
    ):
        return "direction"
    return "zoho_field"


def _choice(value: str, allowed: Iterable[str], what: str, field_name: str) -> str:
    if value not in allowed:
        raise FieldRefused(f"{value!r} is not a valid {what}.", field_name)
    return value


def read_proposal(editor: Editor, kind: Kind, form: Any) -> dict[str, Any]:
    """Check a submitted add form and return the row it describes (nothing is saved)."""
    if editor.empty_reason is not None:
        raise Refused("Load the Zoho fields first (button at the top of the page).")
    host_key = form.get("host_key", "")
    zoho_name = form.get("zoho_field", "")
    if host_key in editor.mapped_keys(kind):
        what = {"field": "host field", "group": "group", "system": "system field"}[kind]
        raise FieldRefused(
            f"That {what} is mapped already; change or remove its row instead.", "host_key"
        )
    proposal = {"host_key": host_key, "zoho_field": zoho_name}
    proposal.update(read_options(kind, host_key, form))
    return proposal


def read_options(kind: Kind, host_key: str, form: Any) -> dict[str, Any]:
    """Direction, policy and inversion from a form; system rows have fixed directions."""
    if kind == "system":
        inverted = host_key == "subscription" and form.get("inverted") in ("on", "true", "1")
        return {"direction": Direction.BOTH.value, "policy": None, "inverted": inverted}
    direction = _choice(
        form.get("direction", Direction.BOTH.value), DIRECTION_LABELS, "direction", "direction"
    )
    policy = _choice(form.get("policy", ""), POLICY_LABELS, "conflict policy", "policy")
    return {"direction": direction, "policy": policy or None, "inverted": False}


def add_row(session: Session, editor: Editor, kind: Kind, form: Any) -> list[str]:
    """Add a mapping row if the engine would sync it; returns its warnings."""
    proposal = read_proposal(editor, kind, form)
    warnings = judge(editor, kind, proposal)
    # What links hold for this key (from an earlier row of it) is another field's value.
    session.add(FieldMap(kind=kind, remapped_at=datetime.now(timezone.utc), **proposal))
    session.commit()
    return warnings


def change_row(session: Session, editor: Editor, row: FieldMap, form: Any) -> list[str]:
    """Change a row's direction, policy or inversion if the engine would still sync it."""
    if editor.empty_reason is not None:
        raise Refused("Load the Zoho fields first (button at the top of the page).")
    kind: Kind = row.kind  # type: ignore[assignment]
    options = read_options(kind, row.host_key, form)
    proposal = {"host_key": row.host_key, "zoho_field": row.zoho_field, **options}
    warnings = judge(editor, kind, proposal)
    overwrite = row.overwrite
    if "overwrite" in form and kind != "system":
        chosen = _choice(form.get("overwrite"), OVERWRITE_LABELS, "overwrite policy", "overwrite")
        overwrite = None if chosen == ALWAYS else chosen
    if "value_map" in form:
        row.value_map = read_value_map(form.get("value_map", ""), editor.zoho_field(row.zoho_field))
    row.direction = options["direction"]
    row.policy = options["policy"]
    row.inverted = options["inverted"]
    store_overwrite(session, row, overwrite)
    resume_row(row)  # the admin saved it: a pause from Zoho's refusal is lifted
    session.commit()
    return warnings


def read_value_map(text: str, zoho: ZohoField | None) -> dict[str, str] | None:
    """``host value=Zoho value`` pairs, separated by ``;`` or new lines (None: no map).

    The Zoho values must be in the field's picklist, or every record carrying one would be
    refused; the host values are free (they are what the host stores).
    """
    pairs: dict[str, str] = {}
    for part in text.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        host_value, equals, zoho_value = part.partition("=")
        if not equals or not host_value.strip() or not zoho_value.strip():
            raise FieldRefused(
                f"{part.strip()!r} is not a pair: write host value=Zoho value, pairs separated "
                "by ';' (for example Acme=Gold; Initech=Silver).",
                "value_map",
            )
        pairs[host_value.strip()] = zoho_value.strip()
    try:
        return check_value_map(pairs, zoho)
    except ValueMapRefused as refusal:
        raise FieldRefused(str(refusal), "value_map") from None
