"""The mapping editor's model: what each section shows and which edits are accepted.

Every edit is judged by building the ``Mapping`` the next run would use with the edit
applied (``preferences.build_mapping`` plus the change, in memory) and looking at that row's
binding: what the editor accepts is exactly what the engine will sync, with the reasons
``check_pair`` gives. Only then is the row written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from ..adapter import ContactAdapter, HostGroup
from ..connection import ConnectedAccount, describe_connection
from ..models import FieldMap, SyncSettings
from ..preferences import (
    MODULES,
    SYSTEM_KINDS,
    MappingRefused,
    build_mapping,
    check_field_map,
    field_maps,
    get_settings,
)
from ..sync import (
    ConflictPolicy,
    Direction,
    HostField,
    Mapping,
    ZohoField,
)

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
    return Editor(
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
    """Refuse the proposal with the shared reason (``preferences.check_field_map``), or
    return its warnings."""
    assert editor.mapping is not None
    return check_field_map(
        editor.mapping, editor.rows, [group.key for group in editor.groups], kind=kind, **proposal
    )


def _choice(value: str, allowed: Iterable[str], what: str) -> str:
    if value not in allowed:
        raise Refused(f"{value!r} is not a valid {what}.")
    return value


def read_proposal(editor: Editor, kind: Kind, form: Any) -> dict[str, Any]:
    """Check a submitted add form and return the row it describes (nothing is saved)."""
    if editor.empty_reason is not None:
        raise Refused("Load the Zoho fields first (button at the top of the page).")
    host_key = form.get("host_key", "")
    zoho_name = form.get("zoho_field", "")
    if host_key in editor.mapped_keys(kind):
        what = {"field": "host field", "group": "group", "system": "system field"}[kind]
        raise Refused(f"That {what} is mapped already; change or remove its row instead.")
    proposal = {"host_key": host_key, "zoho_field": zoho_name}
    proposal.update(read_options(kind, host_key, form))
    return proposal


def read_options(kind: Kind, host_key: str, form: Any) -> dict[str, Any]:
    """Direction, policy and inversion from a form; system rows have fixed directions."""
    if kind == "system":
        inverted = host_key == "subscription" and form.get("inverted") in ("on", "true", "1")
        return {"direction": Direction.BOTH.value, "policy": None, "inverted": inverted}
    direction = _choice(form.get("direction", Direction.BOTH.value), DIRECTION_LABELS, "direction")
    policy = _choice(form.get("policy", ""), POLICY_LABELS, "conflict policy")
    return {"direction": direction, "policy": policy or None, "inverted": False}


def add_row(session: Session, editor: Editor, kind: Kind, form: Any) -> list[str]:
    """Add a mapping row if the engine would sync it; returns its warnings."""
    proposal = read_proposal(editor, kind, form)
    warnings = judge(editor, kind, proposal)
    session.add(FieldMap(kind=kind, **proposal))
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
    row.direction = options["direction"]
    row.policy = options["policy"]
    row.inverted = options["inverted"]
    session.commit()
    return warnings
