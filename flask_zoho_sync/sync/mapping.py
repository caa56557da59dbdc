"""The sync's configuration: which host fields, groups and system values meet which Zoho fields.

Every mapped thing gets a *key* (``"field:email"``, ``"group:newsletter"``,
``"system:subscription"``, ...). The engine works in the canonical space those keys span
(see ``coercion``): it reads both sides into it, merges there, and converts the merge's
decisions back into a Zoho payload and a set of host changes. Keeping one space for both sides
is what lets the merge compare a host value with a Zoho value at all.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Sequence
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone, tzinfo
from functools import cached_property, partial
from typing import Any, Literal

from flask_zoho_sync.sync.coercion import (
    CoercionError,
    Compatibility,
    Direction,
    HostField,
    ZohoField,
    canonical_to_host_value,
    canonical_to_wire,
    check_pair,
    check_wire_value,
    comparable,
    host_to_canonical_value,
    is_blank,
    wire_to_canonical,
)

Module = Literal["Leads", "Contacts"]
#: Host field types held as plain text (``comparable`` strips, folds and cuts them).
_TEXT_KINDS = frozenset(("text", "email", "phone", "url", "choice"))
MODULES: tuple[str, ...] = ("Leads", "Contacts")
SystemKind = Literal["contact_id", "contact_url", "subscription"]
LookupPart = Literal["name", "id"]

#: Zoho returns at most this many fields per list call (reference §2.1).
MAX_PULL_FIELDS = 50
#: Fields every pull needs whatever the mapping: matching, the mandatory name, the cursor.
ALWAYS_PULLED = ("Email", "Last_Name", "Modified_Time")
#: What Zoho calls an unknown name when Last_Name is blank and the email gives no hint.
UNKNOWN_LAST_NAME = "Unknown"
#: The Zoho field that identifies a contact (the pull links by it, the upsert matches on it).
IDENTITY_ZOHO_FIELD = "Email"


def carries_data(kind: str, host_key: str, zoho_field: str, *, email_key: str = "email") -> bool:
    """Whether one mapping pair carries a contact's data, not just who the contact is.

    The rule every face and the engine share (issue 16): a sync needs at least one such pair,
    or a pull creates host contacts with every field blank. A field or group pair counts; the
    email pair (Zoho's Email, or the host's email column ``email_key``) is identity, and the
    system values (Contact Id, Contact URL, subscription) are bookkeeping about the contact.
    """
    if kind == "group":
        return True
    return kind == "field" and zoho_field != IDENTITY_ZOHO_FIELD and host_key != email_key


class ConflictPolicy(enum.Enum):
    """Who wins when both sides changed a field to different values since the last sync."""

    NEWEST = "newest"
    HOST_WINS = "host_wins"
    ZOHO_WINS = "zoho_wins"


#: Standard fields that exist in one module only, with the other module's equivalent (or
#: None), so a mapping carried over from the other module gets a useful hint (reference §3.2).
LEADS_ONLY: dict[str, str | None] = {
    "Company": "Account_Name",
    "Designation": "Title",
    "Street": "Mailing_Street",
    "City": "Mailing_City",
    "State": "Mailing_State",
    "Zip_Code": "Mailing_Zip",
    "Country": "Mailing_Country",
    "Website": None,
    "Lead_Status": None,
    "Industry": None,
    "Annual_Revenue": None,
    "No_of_Employees": None,
    "Rating": None,
}
CONTACTS_ONLY: dict[str, str | None] = {
    **{contacts: leads for leads, contacts in LEADS_ONLY.items() if contacts},
    **dict.fromkeys(
        (
            "Department",
            "Date_of_Birth",
            "Home_Phone",
            "Other_Phone",
            "Asst_Phone",
            "Assistant",
            "Reporting_To",
            "Vendor_Name",
            "Other_Street",
            "Other_City",
            "Other_State",
            "Other_Zip",
            "Other_Country",
        )
    ),
}

#: Default pairs for the standard host fields (reference §3.2): Leads keep a company and an
#: address of their own; Contacts take the company from the linked Account (read-only) and
#: have a mailing address and no Website.
_DEFAULT_PAIRS: dict[str, dict[str, str]] = {
    "Leads": {
        "first_name": "First_Name",
        "last_name": "Last_Name",
        "email": "Email",
        "phone": "Phone",
        "mobile": "Mobile",
        "company": "Company",
        "job_title": "Designation",
        "street": "Street",
        "city": "City",
        "state": "State",
        "postcode": "Zip_Code",
        "country": "Country",
        "description": "Description",
        "website": "Website",
    },
    "Contacts": {
        "first_name": "First_Name",
        "last_name": "Last_Name",
        "email": "Email",
        "phone": "Phone",
        "mobile": "Mobile",
        "company": "Account_Name",
        "job_title": "Title",
        "street": "Mailing_Street",
        "city": "Mailing_City",
        "state": "Mailing_State",
        "postcode": "Mailing_Zip",
        "country": "Mailing_Country",
        "description": "Description",
    },
}
#: Default pairs that may only flow Zoho -> host (Account_Name is a lookup).
_DEFAULT_READ_ONLY = {("Contacts", "Account_Name")}


def _as_direction(value: Direction | str) -> Direction:
    return value if isinstance(value, Direction) else Direction(value)


def _as_policy(value: ConflictPolicy | str | None) -> ConflictPolicy | None:
    if value is None or isinstance(value, ConflictPolicy):
        return value
    return ConflictPolicy(value)


@dataclass(frozen=True)
class FieldMapping:
    """A host contact attribute paired with a Zoho field.

    ``policy`` None follows the mapping's default policy (the admin's global choice);
    ``lookup_part`` says which part of a Zoho lookup (``{"name", "id"}``) the host reads.
    """

    host_field: str
    zoho_field: str
    direction: Direction = Direction.BOTH
    policy: ConflictPolicy | None = None
    lookup_part: LookupPart = "name"
    #: Why the row is paused (Zoho refused its field; ``sync.drift``), or None.
    paused: str | None = None
    #: Host value -> Zoho value replacements (a picklist's wording), applied both ways.
    value_map: tuple[tuple[str, str], ...] = ()
    #: When the row last pointed at another Zoho field (or resumed from a pause): what a
    #: link synced before then holds for it is no base for the merge (``Mapping.stale_keys``).
    remapped_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", _as_direction(self.direction))
        object.__setattr__(self, "policy", _as_policy(self.policy))
        if isinstance(self.value_map, MappingABC):
            object.__setattr__(self, "value_map", tuple(self.value_map.items()))

    @property
    def key(self) -> str:
        return f"field:{self.host_field}"


@dataclass(frozen=True)
class GroupMapping:
    """Membership of a host group shown as a Zoho checkbox (member = ticked)."""

    group_key: str
    zoho_field: str
    direction: Direction = Direction.BOTH
    policy: ConflictPolicy | None = None
    paused: str | None = None
    remapped_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", _as_direction(self.direction))
        object.__setattr__(self, "policy", _as_policy(self.policy))

    @property
    def key(self) -> str:
        return f"group:{self.group_key}"


@dataclass(frozen=True)
class SystemFieldMapping:
    """A value the extension supplies rather than a host attribute.

    * ``contact_id``: the host's primary key, written to Zoho only. When the Zoho field is
      unique it becomes the upsert's duplicate check, so a retried create never duplicates.
    * ``contact_url``: a link back to the contact in the host's admin, written to Zoho only.
    * ``subscription``: whether the contact accepts email, two-way. ``inverted`` maps it to
      an opt-out checkbox such as ``Email_Opt_Out`` (ticked = not subscribed).
    """

    kind: SystemKind
    zoho_field: str
    inverted: bool = False
    paused: str | None = None
    remapped_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"system:{self.kind}"


_SYSTEM_HOST_FIELDS: dict[str, HostField] = {
    "contact_id": HostField("contact_id", "text", label="Contact Id"),
    "contact_url": HostField("contact_url", "url", label="Contact URL"),
    "subscription": HostField("subscribed", "boolean", label="Subscription status"),
}
_SYSTEM_DIRECTIONS: dict[str, Direction] = {
    "contact_id": Direction.TO_ZOHO,
    "contact_url": Direction.TO_ZOHO,
    "subscription": Direction.BOTH,
}


@dataclass(frozen=True)
class Binding:
    """Everything the engine needs to know about one mapping key, resolved and checked.

    ``host`` is the host field's description; groups and system values get a synthetic one
    (boolean, text or url) so all keys convert and compare the same way.
    ``problem`` is set when the key cannot be synced; such a binding is inactive.
    """

    key: str
    kind: Literal["field", "group", "system"]
    host: HostField
    zoho_api_name: str
    zoho: ZohoField | None
    direction: Direction
    policy: ConflictPolicy
    inverted: bool = False
    lookup_part: LookupPart = "name"
    problem: str | None = None
    note: str | None = None
    value_map: tuple[tuple[str, str], ...] = ()
    remapped_at: datetime | None = None

    def to_zoho_value(self, value: Any) -> Any:
        """A host value as the row's value map words it for Zoho (unmapped values pass)."""
        if self.value_map and isinstance(value, str):
            return dict(self.value_map).get(value, value)
        return value

    def to_host_value(self, value: Any) -> Any:
        """A Zoho value back in the host's words (the first host value mapped to it)."""
        if self.value_map and isinstance(value, str):
            for host_value, zoho_value in self.value_map:
                if zoho_value == value:
                    return host_value
        return value

    @property
    def active(self) -> bool:
        return self.problem is None

    @property
    def is_subscription(self) -> bool:
        return self.key == "system:subscription"

    @property
    def description(self) -> str:
        """How the admin would name this pair, for problems and warnings."""
        if self.kind == "group":
            return f"group {self.host.name!r} -> {self.zoho_api_name}"
        if self.kind == "system":
            return f"{self.host.label} -> {self.zoho_api_name}"
        return f"host field {self.host.name!r} -> {self.zoho_api_name}"


@dataclass(frozen=True)
class HostChanges:
    """What the adapter must write to one host contact."""

    fields: dict[str, Any] = field(default_factory=dict)
    groups_add: frozenset[str] = frozenset()
    groups_remove: frozenset[str] = frozenset()
    subscribed: bool | None = None
    warnings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.fields or self.groups_add or self.groups_remove or self.subscribed is not None
        )


def default_field_mappings(
    module: Module, host_fields: Iterable[str | HostField]
) -> list[FieldMapping]:
    """The standard pairs for ``module``, limited to the host fields that exist."""
    if module not in _DEFAULT_PAIRS:
        raise ValueError(f"module must be one of {', '.join(MODULES)}, not {module!r}")
    present = {item.name if isinstance(item, HostField) else item for item in host_fields}
    mappings: list[FieldMapping] = []
    for host_name, zoho_name in _DEFAULT_PAIRS[module].items():
        if host_name not in present:
            continue
        read_only = (module, zoho_name) in _DEFAULT_READ_ONLY
        direction = Direction.TO_HOST if read_only else Direction.BOTH
        mappings.append(FieldMapping(host_name, zoho_name, direction=direction))
    return mappings


@dataclass(frozen=True)
class Mapping:
    """The whole mapping for one module, validated, with the conversions the engine needs.

    A binding with a problem (unknown field, refused pair, Zoho field mapped twice) is kept
    out of every conversion, so a bad row in the editor costs that row, not the whole sync;
    ``problems()`` lists them for the admin.
    """

    module: str
    zone: tzinfo
    fields: Sequence[FieldMapping] = ()
    groups: Sequence[GroupMapping] = ()
    system: Sequence[SystemFieldMapping] = ()
    host_fields: Sequence[HostField] = ()
    zoho_fields: Sequence[ZohoField | MappingABC[str, Any]] = ()
    default_policy: ConflictPolicy = ConflictPolicy.NEWEST
    #: The host's email column: the contact's identity, like Zoho's Email.
    email_key: str = "email"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "system", tuple(self.system))
        object.__setattr__(self, "host_fields", tuple(self.host_fields))
        zoho_fields = tuple(
            item if isinstance(item, ZohoField) else ZohoField.from_metadata(item)
            for item in self.zoho_fields
        )
        object.__setattr__(self, "zoho_fields", zoho_fields)
        object.__setattr__(self, "default_policy", _as_policy(self.default_policy))

    # --- building and checking ----------------------------------------------------------

    @cached_property
    def _zoho_by_name(self) -> dict[str, ZohoField]:
        return {item.api_name: item for item in self.zoho_fields}  # type: ignore[union-attr]

    @cached_property
    def _resolved(self) -> tuple[dict[str, Binding], list[str], list[str]]:
        """Bindings by key, problems and warnings, worked out once."""
        bindings: dict[str, Binding] = {}
        problems: list[str] = []
        warnings: list[str] = []
        if self.module not in MODULES:
            problems.append(f"module must be one of {', '.join(MODULES)}, not {self.module!r}")
        zoho_owner: dict[str, str] = {}
        for binding in self._candidates():
            if binding.key in bindings:
                problems.append(f"{binding.description}: {binding.key} is mapped twice")
                continue
            problem = binding.problem
            if problem is None and binding.zoho_api_name in zoho_owner:
                problem = (
                    f"Zoho field {binding.zoho_api_name} is already mapped by "
                    f"{zoho_owner[binding.zoho_api_name]}; a Zoho field can take one value"
                )
            if problem is None:
                verdict = self._check(binding)
                if not verdict.ok:
                    problem = verdict.reason
                elif verdict.lossy:
                    warnings.append(f"{binding.description}: {verdict.reason}")
            if problem is not None:
                problems.append(f"{binding.description}: {problem}")
                binding = replace(binding, problem=problem)
            else:
                zoho_owner[binding.zoho_api_name] = binding.key
            bindings[binding.key] = binding
        pulled = self._pulled_names(bindings.values())
        if len(pulled) > MAX_PULL_FIELDS:
            problems.append(
                f"{len(pulled)} Zoho fields are mapped, but Zoho returns at most "
                f"{MAX_PULL_FIELDS} per call; remove {len(pulled) - MAX_PULL_FIELDS}"
            )
        return bindings, problems, warnings

    def _candidates(self) -> Iterable[Binding]:
        host_by_name = {item.name: item for item in self.host_fields}
        for mapping in self.fields:
            host = host_by_name.get(mapping.host_field)
            yield self._binding(
                key=mapping.key,
                kind="field",
                host=host or HostField(mapping.host_field, "text"),
                zoho_api_name=mapping.zoho_field,
                direction=mapping.direction,
                policy=mapping.policy,
                lookup_part=mapping.lookup_part,
                value_map=mapping.value_map,
                remapped_at=mapping.remapped_at,
                problem=mapping.paused
                if host
                else f"the host has no field {mapping.host_field!r} (unknown host field)",
            )
        for group in self.groups:
            yield self._binding(
                key=group.key,
                kind="group",
                host=HostField(group.group_key, "boolean", label=f"group {group.group_key}"),
                zoho_api_name=group.zoho_field,
                direction=group.direction,
                policy=group.policy,
                problem=group.paused,
                remapped_at=group.remapped_at,
            )
        for system in self.system:
            yield self._binding(
                key=system.key,
                kind="system",
                host=_SYSTEM_HOST_FIELDS[system.kind],
                zoho_api_name=system.zoho_field,
                direction=_SYSTEM_DIRECTIONS[system.kind],
                policy=None,
                inverted=system.inverted,
                problem=system.paused,
                remapped_at=system.remapped_at,
            )

    def _binding(self, *, policy: ConflictPolicy | None, **values: Any) -> Binding:
        zoho = self._zoho_by_name.get(values["zoho_api_name"])
        return Binding(zoho=zoho, policy=policy or self.default_policy, **values)

    def _check(self, binding: Binding) -> Compatibility:
        if binding.zoho is None:
            return Compatibility(False, self._unknown_zoho_field(binding.zoho_api_name))
        if binding.inverted and binding.zoho.data_type != "boolean":
            return Compatibility(False, "only a Zoho checkbox (boolean) can be inverted")
        return check_pair(binding.host, binding.zoho, binding.direction)

    def _unknown_zoho_field(self, api_name: str) -> str:
        other_module = {"Leads": "Contacts", "Contacts": "Leads"}.get(self.module)
        other_only = CONTACTS_ONLY if self.module == "Leads" else LEADS_ONLY
        if other_module and api_name in other_only:
            equivalent = other_only[api_name]
            hint = (
                f"in {self.module} use {equivalent}"
                if equivalent
                else f"{self.module} has no such standard field"
            )
            return f"{api_name} is a {other_module} field; {hint}"
        if not self.zoho_fields:
            return (
                f"Zoho field {api_name} cannot be checked: the {self.module} fields are not loaded"
            )
        return f"Zoho's {self.module} module has no field {api_name} (unknown Zoho field)"

    def problems(self) -> list[str]:
        """Why parts of this mapping cannot be synced, in words an admin can act on."""
        return list(self._resolved[1])

    def warnings(self) -> list[str]:
        """Allowed pairs where some values will be cut, rounded or refused per record."""
        return list(self._resolved[2])

    @property
    def bindings(self) -> tuple[Binding, ...]:
        """Every key, active or not (the editor shows the inactive ones with their problem)."""
        return tuple(self._resolved[0].values())

    def binding(self, key: str) -> Binding:
        return self._resolved[0][key]

    @cached_property
    def _active(self) -> tuple[Binding, ...]:
        return tuple(binding for binding in self._resolved[0].values() if binding.active)

    def active_bindings(self) -> list[Binding]:
        """The bindings that take part in the sync (no problem found).

        Worked out once: the merge asks for every key of every record, and an import of
        100,000 records asked 300,000 times."""
        return list(self._active)

    def data_bindings(self) -> list[Binding]:
        """The active bindings that carry data (``carries_data``); with none, nothing syncs."""
        return [
            binding
            for binding in self._active
            if carries_data(
                binding.kind, binding.host.name, binding.zoho_api_name, email_key=self.email_key
            )
        ]

    @cached_property
    def _data_keys(self) -> dict[str, str]:
        return {binding.key: binding.kind for binding in self.data_bindings()}

    def has_data(self, canonical: MappingABC[str, Any]) -> bool:
        """Whether canonical values hold something beyond identity: a contact without is
        never created on either side (it would be a blank row with an email). A group
        counts when the contact is in it; "not in the group" is no more than blank."""
        for key, value in canonical.items():
            kind = self._data_keys.get(key)
            if (kind == "group" and value is True) or (kind == "field" and not is_blank(value)):
                return True
        return False

    def sync_keys(self) -> list[str]:
        """The keys that take part in the sync."""
        return [binding.key for binding in self.active_bindings()]

    def zoho_field(self, api_name: str) -> ZohoField | None:
        return self._zoho_by_name.get(api_name)

    @cached_property
    def _remapped(self) -> tuple[tuple[str, datetime], ...]:
        return tuple(
            (binding.key, _utc(binding.remapped_at))
            for binding in self._resolved[0].values()
            if binding.remapped_at is not None
        )

    def stale_keys(self, synced_at: datetime | None) -> set[str]:
        """Keys whose row was remapped since a link was synced at ``synced_at``: the value
        its snapshot holds was another Zoho field's, so the merge takes the key as newly
        mapped (a blank never overwrites a value) instead of as changed on one side."""
        if not self._remapped:
            return set()
        synced = _utc(synced_at) if synced_at is not None else None
        return {key for key, at in self._remapped if synced is None or synced < at}

    # --- what the pull and push ask Zoho for ------------------------------------------------

    @staticmethod
    def _pulled_names(bindings: Iterable[Binding]) -> list[str]:
        names = [binding.zoho_api_name for binding in bindings if binding.active]
        return list(dict.fromkeys([*names, *ALWAYS_PULLED]))

    def zoho_api_names(self) -> list[str]:
        """Every Zoho field a pull must request: the mapped ones and those the engine reads."""
        return self._pulled_names(self.bindings)

    def duplicate_check_fields(self) -> list[str]:
        """The upsert's duplicate check (reference §2.6).

        The host id in a unique Zoho field is the best key: it never changes and a retried
        create finds the record it made. Otherwise Email, Zoho's system duplicate check.
        """
        for binding in self.active_bindings():
            if binding.key == "system:contact_id" and binding.zoho and binding.zoho.unique:
                return [binding.zoho_api_name]
        return ["Email"]

    # --- into the canonical space ------------------------------------------------------------

    def host_to_canonical(
        self,
        host_values: MappingABC[str, Any],
        groups: Collection[str] = frozenset(),
        subscribed: bool | None = None,
        contact_id: Any = None,
        contact_url: str | None = None,
    ) -> dict[str, Any]:
        """The host contact in canonical shape.

        Keys are left out when the host did not say (a field missing from ``host_values``,
        ``subscribed``/``contact_id``/``contact_url`` None): the merge then treats them as
        unchanged, so a partial read can never blank the other side.
        """
        system_values = {
            "system:subscription": subscribed,
            "system:contact_id": None if contact_id is None else str(contact_id),
            "system:contact_url": contact_url,
        }
        canonical: dict[str, Any] = {}
        for binding in self.active_bindings():
            if binding.kind == "field":
                if binding.host.name not in host_values:
                    continue
                value = host_values[binding.host.name]
            elif binding.kind == "group":
                value = binding.host.name in groups
            else:
                value = system_values[binding.key]
                if value is None:
                    continue
            canonical[binding.key] = host_to_canonical_value(
                value, binding.host, binding.zoho, self.zone
            )
        return canonical

    def zoho_to_canonical(self, zoho_record: MappingABC[str, Any]) -> dict[str, Any]:
        """A Zoho record in canonical shape; fields the record does not carry are left out."""
        canonical: dict[str, Any] = {}
        for binding in self.active_bindings():
            if binding.zoho_api_name not in zoho_record or binding.zoho is None:
                continue
            value = wire_to_canonical(
                binding.to_host_value(zoho_record[binding.zoho_api_name]),
                binding.zoho,
                binding.host,
                self.zone,
                lookup_part=binding.lookup_part,
            )
            if binding.inverted and value is not None:
                value = not value
            canonical[binding.key] = value
        return canonical

    # --- out of the canonical space ---------------------------------------------------------

    def canonical_to_zoho(self, changes: MappingABC[str, Any]) -> dict[str, Any]:
        """Zoho's wire values for the changed keys that may be written to Zoho.

        Always pass the result through ``prepare_outgoing``, which applies Zoho's limits.
        """
        payload: dict[str, Any] = {}
        for key, value in changes.items():
            binding = self._resolved[0].get(key)
            if binding is None or not binding.active or not binding.direction.writes_zoho:
                continue
            assert binding.zoho is not None  # an active binding has metadata
            if binding.is_subscription and value is None:
                continue  # unknown is not a decision to send
            wire_value = not value if binding.inverted and value is not None else value
            wire_value = binding.to_zoho_value(wire_value)
            payload[binding.zoho_api_name] = canonical_to_wire(
                wire_value, binding.host, binding.zoho, self.zone
            )
        return payload

    def prepare_outgoing(
        self,
        zoho_payload: MappingABC[str, Any],
        is_create: bool,
        *,
        fallback_email: str | None = None,
    ) -> tuple[dict[str, Any], list[str], list[str]]:
        """Make one record's payload acceptable to Zoho: ``(payload, warnings, errors)``.

        Fallbacks are applied and reported as warnings: over-long text is cut, and a blank
        ``Last_Name`` (Zoho's one mandatory field; newsletter sign-ups rarely have one) is
        filled from the email's local part, else "Unknown". Values Zoho would refuse become
        errors: a record with errors must not be sent, but the rest of the batch can be.
        ``fallback_email`` is the contact's email when an update's payload does not carry it.
        """
        payload = dict(zoho_payload)
        warnings: list[str] = []
        errors: list[str] = []
        for api_name, value in zoho_payload.items():
            zoho = self.zoho_field(api_name)
            if zoho is None:
                continue
            allowed = zoho.creatable if is_create else zoho.updatable
            if not allowed:
                errors.append(f"{api_name}: Zoho does not let the API write this field")
                continue
            try:
                payload[api_name] = check_wire_value(zoho, value, warnings)
            except CoercionError as exc:
                errors.append(str(exc))
        if (is_create or "Last_Name" in payload) and is_blank(payload.get("Last_Name")):
            email = payload.get("Email") or fallback_email
            local_part = email.split("@", 1)[0].strip() if isinstance(email, str) else ""
            filled = local_part if email and "@" in email and local_part else UNKNOWN_LAST_NAME
            last_name = self.zoho_field("Last_Name")
            limit = last_name.max_length if last_name else None
            payload["Last_Name"] = filled[:limit] if limit else filled
            warnings.append(
                f"Last_Name: blank, but Zoho requires it; sent {payload['Last_Name']!r} instead"
            )
        return payload, warnings, errors

    def canonical_to_host(self, changes: MappingABC[str, Any]) -> HostChanges:
        """What to write to the host for the changed keys that may be written to the host."""
        fields: dict[str, Any] = {}
        groups_add: set[str] = set()
        groups_remove: set[str] = set()
        subscribed: bool | None = None
        warnings: list[str] = []
        writers = self._host_writers
        for key, value in changes.items():
            binding = writers.get(key)
            if binding is None:
                continue
            if binding.kind == "group":
                (groups_add if value else groups_remove).add(binding.host.name)
            elif binding.is_subscription:
                subscribed = None if value is None else bool(value)
            elif binding.kind == "field":
                fields[binding.host.name] = canonical_to_host_value(
                    value, binding.host, self.zone, warnings=warnings
                )
        return HostChanges(
            fields=fields,
            groups_add=frozenset(groups_add),
            groups_remove=frozenset(groups_remove),
            subscribed=subscribed,
            warnings=tuple(warnings),
        )

    @cached_property
    def readable_names(self) -> dict[str, str]:
        """Each key as an admin recognises it, "Label (Zoho_Field)", for history and plans:
        made once, where every record's history row named its keys anew."""
        return {
            key: f"{binding.host.label} ({binding.zoho_api_name})"
            for key, binding in self._resolved[0].items()
        }

    @cached_property
    def _host_writers(self) -> dict[str, Binding]:
        """The active bindings that may write the host, by key: ``canonical_to_host`` runs
        once per record of an import, and checked each key's binding again every time."""
        return {
            key: binding
            for key, binding in self._resolved[0].items()
            if binding.active and binding.direction.writes_host
        }

    # --- comparing ---------------------------------------------------------------------------

    def values_equal(self, key: str, a: Any, b: Any) -> bool:
        """Whether two values of ``key`` are the same as far as the sync is concerned.

        Blank (None, "", missing) is one value; strings are stripped; emails compare without
        case; decimals to the Zoho field's places; datetimes as UTC instants to the second;
        multi-selects as sets; text only as far as both fields can hold it.
        """
        if a is None and b is None:
            return True  # blank on both sides, whatever the key (the merge's commonest case)
        spec = self._comparing.get(key)
        if spec is None:
            return _plain(a) == _plain(b)
        host, zoho, blank_is_false, blank = spec
        if host.type in _TEXT_KINDS:
            # Text against a blank, as a first import asks of every value: a string reduces
            # to None exactly when it is blank, and to a non-empty string otherwise.
            if a is None and isinstance(b, str):
                return is_blank(b)
            if b is None and isinstance(a, str):
                return is_blank(a)
        zone = self.zone
        left = blank
        if a is not None:
            left = comparable(a, host, zoho, zone, blank_is_false=blank_is_false)
        right = blank
        if b is not None:
            right = comparable(b, host, zoho, zone, blank_is_false=blank_is_false)
        return bool(left == right)

    def equality(self, key: str) -> Callable[[Any, Any], bool]:
        """``values_equal`` for one key, as a function of the two values, made once per key
        (the merge asks for one per key of every record)."""
        equality = self._equalities.get(key)
        if equality is None:
            equality = partial(self.values_equal, key)
        return equality

    @cached_property
    def _equalities(self) -> dict[str, Callable[[Any, Any], bool]]:
        return {key: partial(self.values_equal, key) for key in self._resolved[0]}

    @cached_property
    def _comparing(self) -> dict[str, tuple[HostField, ZohoField | None, bool, Any]]:
        """Per key, what ``comparable`` needs and what it makes of a blank (None): a first
        import compares every Zoho value with the blank of a contact not yet made."""
        comparing = {}
        for key, binding in self._resolved[0].items():
            blank_is_false = not binding.is_subscription
            blank = comparable(
                None, binding.host, binding.zoho, self.zone, blank_is_false=blank_is_false
            )
            comparing[key] = (binding.host, binding.zoho, blank_is_false, blank)
        return comparing


def _utc(moment: datetime) -> datetime:
    """Stored times as aware UTC (SQLite hands them back naive)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _plain(value: Any) -> Any:
    if is_blank(value):
        return None
    return value.strip() if isinstance(value, str) else value
