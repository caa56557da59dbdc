"""What syncs: the host-side scope, the Zoho-side scope, what happens to a record that
leaves it, and the key a first sync matches records on (issue 21).

Pure values and rules: the host glue (``flask_zoho_sync.scope``) stores them, the passes
(``pull``, ``push``) apply them. The Zoho scope becomes COQL criteria the client sends, so
a record outside it is never downloaded; its complement names the records that left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from flask_zoho_sync.sync.mapping import Binding, Mapping
from flask_zoho_sync.zoho.coql import AnyOf, Criterion, OneOf

#: What a record that leaves the scope does to its counterpart: ``unlink`` keeps both
#: records and stops syncing them; ``delete`` deletes the other side's copy (through the
#: mass-delete breaker).
ON_LEAVE = ("unlink", "delete")

#: The comparators a Zoho scope condition takes (every field type COQL filters on has both).
OPERATORS = ("=", "!=")

#: ``contact_id``: the Zoho field mapped to the host's Contact Id holds the contact's id;
#: ``email`` (the default): email, case and surrounding whitespace ignored;
#: ``field:NAME``: a mapped host field, unique on both sides.
MATCH_KEYS = ("email", "contact_id")
FIELD_PREFIX = "field:"

#: What the history and the plan say about a record the scope left out or let go.
LEFT_SCOPE = "left the sync's scope"
AMBIGUOUS = "AMBIGUOUS_MATCH"

_CONDITION = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(!=|=)\s*(.*?)\s*\Z")


class ScopeRefused(ValueError):
    """A scope setting that cannot be used; the message is for the admin."""


@dataclass(frozen=True)
class ZohoCondition:
    """``field = value`` or ``field != value`` on a Zoho field; the record is in scope when
    every condition holds. A field left empty counts as not equal to any value (Zoho's)."""

    field: str
    operator: str
    value: str

    def criterion(self) -> Criterion:
        return Criterion(self.field, self.operator, self.value)

    def negated(self) -> Criterion:
        return Criterion(self.field, "!=" if self.operator == "=" else "=", self.value)

    def text(self) -> str:
        return f"{self.field} {self.operator} {self.value}"


def parse_zoho_scope(text: str | None) -> tuple[ZohoCondition, ...]:
    """Conditions from ``Lead_Status != Junk; Owner = 4876876000000225001`` (``;`` or a line
    each). Values are taken as written, without quotes; an empty text is no condition."""
    conditions: list[ZohoCondition] = []
    for part in re.split(r"[;\n]", text or ""):
        if not part.strip():
            continue
        match = _CONDITION.match(part)
        if match is None or not match.group(3):
            raise ScopeRefused(
                f"{part.strip()!r} is not a Zoho condition; write FIELD = VALUE or "
                "FIELD != VALUE with the field's API name, e.g. Lead_Status != Junk."
            )
        value = match.group(3).strip().strip("'\"")
        conditions.append(ZohoCondition(match.group(1), match.group(2), value))
    if len(conditions) > 10:
        raise ScopeRefused("At most 10 Zoho conditions (Zoho's queries take 25 criteria).")
    return tuple(conditions)


def zoho_scope_text(conditions: tuple[ZohoCondition, ...]) -> str:
    return "; ".join(condition.text() for condition in conditions)


def parse_match_key(text: str | None) -> str:
    """``email``, ``contact_id`` or ``field:NAME`` (refused otherwise)."""
    key = (text or "email").strip()
    if key in MATCH_KEYS:
        return key
    if key.startswith(FIELD_PREFIX) and key[len(FIELD_PREFIX) :].strip():
        return FIELD_PREFIX + key[len(FIELD_PREFIX) :].strip()
    raise ScopeRefused(f"{key!r} is not a match key; use email, contact_id or field:HOST_FIELD.")


def parse_on_leave(text: str | None) -> str:
    value = (text or "unlink").strip().lower()
    if value not in ON_LEAVE:
        raise ScopeRefused(f"{value!r} is not a choice for on-leave; use unlink or delete.")
    return value


@dataclass(frozen=True)
class Scope:
    """What one run syncs. The default syncs everything and matches on email."""

    #: Host contacts in any of these groups (none: every group).
    host_groups: tuple[str, ...] = ()
    #: The name of a filter the host gave ``adapter.add_scope_filter`` (None: no filter).
    host_filter: str | None = None
    #: Conditions on Zoho fields, all of which a record in scope meets.
    zoho: tuple[ZohoCondition, ...] = field(default_factory=tuple)
    on_leave: str = "unlink"
    match_key: str = "email"

    @property
    def limits_host(self) -> bool:
        return bool(self.host_groups) or bool(self.host_filter)

    @property
    def limits_zoho(self) -> bool:
        return bool(self.zoho)

    @property
    def match_field(self) -> str | None:
        """The host field of a ``field:NAME`` match key."""
        if self.match_key.startswith(FIELD_PREFIX):
            return self.match_key[len(FIELD_PREFIX) :]
        return None

    def zoho_criteria(self) -> list[Criterion | AnyOf | OneOf]:
        """The WHERE a scoped read adds: every condition."""
        return [condition.criterion() for condition in self.zoho]

    def zoho_outside(self) -> list[Criterion | AnyOf | OneOf]:
        """The WHERE of the records outside the scope: any condition broken."""
        negated = [condition.negated() for condition in self.zoho]
        if len(negated) == 1:
            return [negated[0]]
        return [AnyOf(tuple(negated))]

    def fingerprint(self) -> tuple[object, ...]:
        return (
            self.host_groups,
            self.host_filter,
            zoho_scope_text(self.zoho),
            self.on_leave,
            self.match_key,
        )


def normalized_email(value: object) -> str:
    """Email as the default match key reads it: case and surrounding whitespace ignored."""
    return value.strip().lower() if isinstance(value, str) else ""


def match_binding(mapping: Mapping, scope: Scope) -> Binding:
    """The mapping row a ``contact_id`` or ``field:NAME`` match key reads, refused
    (``ScopeRefused``) unless it is mapped and its Zoho field is unique: Zoho's upsert
    matches only on unique fields, and a key two Zoho records may share is no key."""
    # Bindings are keyed "system:contact_id" and "field:NAME", as match keys are.
    wanted = "system:contact_id" if scope.match_key == "contact_id" else scope.match_key
    binding = next((b for b in mapping.active_bindings() if b.key == wanted), None)
    if binding is None or not binding.zoho_api_name:
        raise ScopeRefused(
            f"The match key {scope.match_key} needs its host field mapped to a Zoho field; "
            "map it, or match on email."
        )
    zoho: Any = binding.zoho
    if zoho is not None and not zoho.unique:
        raise ScopeRefused(
            f"The match key {scope.match_key} reads Zoho's {binding.zoho_api_name}, which "
            "allows duplicate values; make it unique in Zoho (Do not allow duplicate "
            "values), refresh the Zoho fields, or match on email."
        )
    return binding
