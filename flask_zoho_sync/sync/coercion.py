"""Field descriptions on both sides, which pairs may be synced, and how values cross over.

A value travels through three shapes:

* the **host** shape: what the host's model attribute holds (``str``, ``int``, ``Decimal``,
  ``bool``, ``date``, naive or aware ``datetime``, ``list[str]``);
* the **canonical** shape: what the engine compares, merges and stores in a link's snapshot.
  It is JSON-safe on purpose, because the snapshot is a JSON column, and it is the same for
  a value whichever side it came from, so comparing two sides is comparing two canonicals;
* the **wire** shape: what Zoho sends and accepts (reference §3.1 ``json_type``, §8).

Canonical values, by the host field's type (``None`` always means blank):

=============================== ==============================================================
text, email, phone, url, choice ``str``, stripped and never empty
integer                         ``int``
decimal                         ``str`` holding a ``Decimal``, rounded to the Zoho field's
                                decimal places (so both sides round the same way)
boolean                         ``bool``
date                            ``"yyyy-MM-dd"``
datetime                        ISO 8601 in UTC, to the second (``2026-04-04T15:30:00+00:00``)
multichoice                     sorted ``list[str]`` without duplicates (order never matters)
=============================== ==============================================================

Nothing here knows about Flask, SQLAlchemy or HTTP: the engine passes plain values in.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from flask_zoho_sync.zoho.timefmt import (
    UTC,
    ZohoTimeFormatError,
    format_date,
    format_datetime,
    parse_date,
    parse_datetime,
)

HostType = Literal[
    "text",
    "email",
    "phone",
    "url",
    "integer",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "choice",
    "multichoice",
]
HOST_TYPES: frozenset[str] = frozenset(HostType.__args__)  # type: ignore[attr-defined]

#: Zoho types whose value is a plain string on the wire.
STRING_TYPES = frozenset({"text", "textarea", "email", "phone", "website", "picklist"})
#: Zoho types holding a whole number.
INTEGER_TYPES = frozenset({"integer", "bigint", "long"})
#: Zoho types holding a decimal number (sent as a JSON double).
DECIMAL_TYPES = frozenset({"double", "currency", "percent"})
#: Zoho types that point at another record: readable (the linked record's name or id), never
#: writable by this sync, because writing them needs the other record's Zoho id.
LOOKUP_TYPES = frozenset({"lookup", "ownerlookup", "userlookup"})
#: Every Zoho type the sync can handle; anything else (formula, autonumber, subform,
#: fileupload, multiselectlookup, ...) is computed by Zoho or has a structure of its own.
SUPPORTED_ZOHO_TYPES = (
    STRING_TYPES
    | INTEGER_TYPES
    | DECIMAL_TYPES
    | LOOKUP_TYPES
    | {"boolean", "date", "datetime", "multiselectpicklist"}
)

#: What Zoho allows when a field's metadata does not say (reference §3.1 "Field type limits").
DEFAULT_LENGTHS = {
    "text": 255,
    "textarea": 32000,
    "email": 100,
    "phone": 30,
    "website": 255,
    "picklist": 255,
}
#: Zoho's limits on digits: Number 9, Long Integer 18, Decimal/Currency 16 before the point.
MAX_INTEGER_DIGITS = {"integer": 9, "bigint": 18, "long": 18}
MAX_DECIMAL_INTEGER_DIGITS = 16

#: Zoho's placeholder for "no choice made" in a picklist.
PICKLIST_NONE = "-None-"

_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Direction(enum.Enum):
    """Which side a mapped key may write."""

    BOTH = "both"
    TO_ZOHO = "to_zoho"
    TO_HOST = "to_host"

    @property
    def writes_zoho(self) -> bool:
        return self is not Direction.TO_HOST

    @property
    def writes_host(self) -> bool:
        return self is not Direction.TO_ZOHO


class CoercionError(ValueError):
    """A value that cannot be written to the other side.

    It is raised per value (or collected per record by ``Mapping.prepare_outgoing``), so one
    bad contact becomes one error an admin can read and fix, and never stops a whole batch.
    """

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: cannot use {shown}: {reason}")


@dataclass(frozen=True)
class ZohoField:
    """One field of the Zoho module, as ``GET /settings/fields`` describes it (reference §3.1)."""

    api_name: str
    label: str
    data_type: str
    json_type: str | None = None
    length: int | None = None
    creatable: bool = True
    updatable: bool = True
    unique: bool = False
    custom: bool = False
    system_mandatory: bool = False
    picklist_values: tuple[str, ...] = ()
    lookup_module: str | None = None
    decimal_places: int | None = None

    @property
    def writable(self) -> bool:
        """Whether a two-way sync may write it: it must accept both creates and updates."""
        return self.creatable and self.updatable

    @property
    def max_length(self) -> int | None:
        """The longest string Zoho stores here, falling back to the type's documented limit."""
        return self.length or DEFAULT_LENGTHS.get(self.data_type)

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> ZohoField:
        """Build from one element of the ``fields`` array.

        ``operation_type.api_create``/``api_update`` is Zoho's real "writable through the API"
        flag; ``read_only`` and ``field_read_only`` disagree with it on some standard fields
        (``Owner``), so they are only the fallback when ``operation_type`` is absent.
        """
        operations = meta.get("operation_type")
        if isinstance(operations, Mapping):
            creatable = bool(operations.get("api_create"))
            updatable = bool(operations.get("api_update"))
        else:
            locked = bool(meta.get("read_only")) or bool(meta.get("field_read_only"))
            creatable = updatable = not locked
        picklist = tuple(
            str(entry.get("actual_value", entry.get("display_value")))
            for entry in meta.get("pick_list_values") or ()
            if isinstance(entry, Mapping)
        )
        lookup = meta.get("lookup")
        lookup_module: str | None = None
        if isinstance(lookup, Mapping) and lookup.get("module"):
            module = lookup["module"]
            lookup_module = str(module.get("api_name")) if isinstance(module, Mapping) else module
        length = meta.get("length")
        decimal_places = meta.get("decimal_place")
        return cls(
            api_name=str(meta["api_name"]),
            label=str(meta.get("field_label") or meta.get("display_label") or meta["api_name"]),
            data_type=str(meta.get("data_type") or "text"),
            json_type=meta.get("json_type"),
            length=int(length) if isinstance(length, int | str) and str(length).isdigit() else None,
            creatable=creatable,
            updatable=updatable,
            unique=bool(meta.get("unique")),
            custom=bool(meta.get("custom_field")),
            system_mandatory=bool(meta.get("system_mandatory")),
            picklist_values=picklist,
            lookup_module=lookup_module,
            decimal_places=int(decimal_places) if isinstance(decimal_places, int) else None,
        )


@dataclass(frozen=True)
class HostField:
    """One attribute of the host's contact, described by the host (or its adapter).

    ``datetime_aware`` says whether the host stores aware datetimes; naive ones are taken to
    be in the sync's configured zone, which is what most Flask apps mean by a naive value.
    """

    name: str
    type: HostType
    label: str = ""
    max_length: int | None = None
    choices: tuple[str, ...] | None = None
    datetime_aware: bool = False

    def __post_init__(self) -> None:
        if self.type not in HOST_TYPES:
            raise ValueError(
                f"host field {self.name!r} has type {self.type!r}; "
                f"expected one of {', '.join(sorted(HOST_TYPES))}"
            )
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " ").capitalize())
        if self.choices is not None and not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))


@dataclass(frozen=True)
class Compatibility:
    """The verdict on one host field / Zoho field pair.

    ``ok`` False: the pair is refused and ``reason`` says why, for an admin.
    ``lossy`` True: the pair is allowed, but some values will be cut, rounded or refused per
    record; ``reason`` says which, so the mapping editor can show it as a warning.
    """

    ok: bool
    reason: str | None = None
    lossy: bool = False


# --- which pairs may be synced -----------------------------------------------------------

#: host type -> Zoho types that hold every host value and give it back unchanged.
_ROUND_TRIP: dict[str, frozenset[str]] = {
    "text": STRING_TYPES,
    "email": frozenset({"email", "text", "textarea"}),
    "phone": frozenset({"phone", "text", "textarea"}),
    "url": frozenset({"website", "text", "textarea"}),
    "choice": frozenset({"picklist", "text", "textarea"}),
    "multichoice": frozenset({"multiselectpicklist"}),
    "integer": INTEGER_TYPES | DECIMAL_TYPES,
    "decimal": DECIMAL_TYPES,
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime"}),
}
#: host type -> Zoho types the host may read but never write back.
_READ_ONLY: dict[str, frozenset[str]] = {
    "text": LOOKUP_TYPES,
    "decimal": INTEGER_TYPES,
}
#: Refusals common enough to deserve their own words.
_SPECIFIC_REFUSALS: dict[tuple[str, str], str] = {
    ("datetime", "date"): "Zoho field {z} holds only a date, so the time of day in host field "
    "{h} would be lost",
    ("date", "datetime"): "Zoho field {z} holds a date and a time, but host field {h} holds only "
    "a date, so Zoho's time of day would be lost",
}


def _plural(values: Iterable[str]) -> str:
    return ", ".join(repr(value) for value in values)


def check_pair(host: HostField, zoho: ZohoField, direction: Direction) -> Compatibility:
    """Say whether ``host`` and ``zoho`` can be synced in ``direction``, and if not, why.

    Pairs that cannot round-trip are refused rather than allowed with a warning, because a
    value that changes on the way back looks like an edit and starts a loop (peers §4.1).
    """
    h, z = host.label or host.name, zoho.api_name
    if zoho.data_type not in SUPPORTED_ZOHO_TYPES:
        return Compatibility(
            False,
            f"Zoho field {z} is a {zoho.data_type} field, which Zoho computes or structures "
            f"itself; it cannot be synced",
        )
    if zoho.data_type in STRING_TYPES and zoho.json_type not in (None, "string"):
        return Compatibility(
            False, f"Zoho field {z} holds a list ({zoho.json_type}), not a single text value"
        )
    if direction.writes_zoho and not zoho.writable:
        return Compatibility(
            False,
            f"Zoho does not let the API write {z}; map it with direction 'to host' to read it",
        )
    if zoho.data_type in LOOKUP_TYPES and host.type == "text":
        if direction.writes_zoho:
            return Compatibility(
                False,
                f"Zoho field {z} links to another record; the sync can only read that "
                f"record's name into {h}: use direction 'to host'",
            )
        return Compatibility(True)
    if zoho.data_type in _READ_ONLY.get(host.type, ()):
        if direction.writes_zoho:
            return Compatibility(
                False,
                f"Zoho field {z} holds whole numbers, so the fraction of host field {h} would "
                f"be lost; use direction 'to host' or a Zoho decimal field",
            )
        return Compatibility(True)
    if zoho.data_type not in _ROUND_TRIP[host.type]:
        specific = _SPECIFIC_REFUSALS.get((host.type, zoho.data_type))
        if specific:
            return Compatibility(False, specific.format(h=h, z=z))
        return Compatibility(
            False,
            f"host field {h} ({host.type}) cannot be stored in Zoho field {z} "
            f"({zoho.data_type}) and read back unchanged",
        )
    return _check_values(host, zoho, direction)


def _check_values(host: HostField, zoho: ZohoField, direction: Direction) -> Compatibility:
    """The pair's types fit; check the values each side allows (choices, lengths, numbers)."""
    h, z = host.label or host.name, zoho.api_name
    notes: list[str] = []
    if host.type in ("choice", "multichoice") and zoho.picklist_values:
        zoho_values = set(zoho.picklist_values) - {PICKLIST_NONE}
        host_values = set(host.choices or ())
        missing_in_zoho = sorted(host_values - zoho_values)
        if missing_in_zoho and direction.writes_zoho:
            return Compatibility(
                False,
                f"host choices {_plural(missing_in_zoho)} of {h} are not in Zoho's picklist "
                f"for {z}; add them in Zoho or map the field 'to host' only",
            )
        missing_on_host = sorted(zoho_values - host_values) if host.choices else []
        if missing_on_host and direction.writes_host:
            notes.append(
                f"Zoho values {_plural(missing_on_host)} of {z} are not host choices of {h}; "
                f"records holding them will fail to sync to the host"
            )
    if host.type == "text" and zoho.data_type == "picklist" and direction.writes_zoho:
        notes.append(f"host values that are not in Zoho's picklist for {z} are refused per record")
    if (
        host.type == "text"
        and zoho.data_type in ("email", "phone", "website")
        and direction.writes_zoho
    ):
        notes.append(f"Zoho checks {zoho.data_type} values in {z}; invalid ones are refused")
    if host.type == "integer" and zoho.data_type in DECIMAL_TYPES and direction.writes_host:
        notes.append(f"Zoho values of {z} with a fraction cannot be stored in {h} and are refused")
    limit = zoho.max_length
    longest_host_value = (
        max(map(len, host.choices), default=0) if host.choices is not None else host.max_length
    )
    if (
        direction.writes_zoho
        and limit is not None
        and zoho.data_type in STRING_TYPES
        and (longest_host_value is None or longest_host_value > limit)
    ):
        fate = "cut to fit" if zoho.data_type in ("text", "textarea") else "refused"
        notes.append(f"values longer than {limit} characters do not fit in {z} and are {fate}")
    if direction.writes_host and host.max_length and limit and limit > host.max_length:
        notes.append(f"Zoho values longer than {host.max_length} characters do not fit in {h}")
    if notes:
        return Compatibility(True, "; ".join(notes), lossy=True)
    return Compatibility(True)


# --- values: host -> canonical -------------------------------------------------------------


def is_blank(value: Any) -> bool:
    """Blank is one thing on both sides: Zoho sends ``null``, hosts store ``None`` or ``""``."""
    if value is None:
        return True
    if isinstance(value, str):
        stripped = value.strip()  # once: an import asks this of every value several times
        return not stripped or stripped == PICKLIST_NONE
    if isinstance(value, list | tuple | set | frozenset):
        return all(is_blank(item) for item in value)
    return False


def _decimal_places(zoho: ZohoField | None) -> int | None:
    if zoho is None:
        return None
    if zoho.data_type in INTEGER_TYPES:
        return 0
    if zoho.data_type in DECIMAL_TYPES:
        return zoho.decimal_places if zoho.decimal_places is not None else 2
    return None


def _to_decimal(name: str, value: Any, places: int | None) -> Decimal:
    if isinstance(value, bool):
        raise CoercionError(name, value, "expected a number, got a yes/no value")
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str | float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise CoercionError(name, value, "expected a number") from None
    if not number.is_finite():
        raise CoercionError(name, value, "expected a finite number")
    if places is not None:
        number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return number


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise CoercionError(name, value, "expected a whole number, got a yes/no value")
    if isinstance(value, int):
        return value
    number = _to_decimal(name, value, None)
    if number != number.to_integral_value():
        raise CoercionError(name, value, "expected a whole number, got a fraction")
    return int(number)


def _to_text(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise CoercionError(name, value, f"expected text, got {type(value).__name__}")


def _aware(moment: datetime, zone: tzinfo) -> datetime:
    """Attach ``zone`` to a naive datetime.

    ``fold=0`` (PEP 495) decides the two awkward hours of a DST change: an ambiguous time
    (clocks going back) is the first occurrence, and a time that never existed (clocks going
    forward) is read with the offset from before the change, which lands it an hour later.
    Either way it is one definite instant, which is all the sync needs to compare.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=zone)
    return moment


def _canonical_datetime(name: str, value: Any, zone: tzinfo) -> str:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CoercionError(name, value, "expected an ISO 8601 date and time") from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise CoercionError(name, value, "expected a date and time")
    instant = _aware(moment, zone).astimezone(UTC).replace(microsecond=0)
    return instant.isoformat()


def _canonical_date(name: str, value: Any) -> str:
    if isinstance(value, datetime):
        return format_date(value.date())
    if isinstance(value, date):
        return format_date(value)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return format_date(parse_date(value))
        except ZohoTimeFormatError:
            pass
    raise CoercionError(name, value, "expected a date (yyyy-MM-dd)")


def _canonical_list(name: str, value: Any) -> list[str] | None:
    if isinstance(value, str):
        items: Iterable[Any] = value.split(";")
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        raise CoercionError(name, value, "expected a list of choices")
    cleaned = {_to_text(name, item) for item in items if not is_blank(item)}
    return sorted(cleaned) or None


def _canonical_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise CoercionError(name, value, "expected yes or no (a boolean)")


def host_to_canonical_value(
    value: Any, host: HostField, zoho: ZohoField | None, zone: tzinfo
) -> Any:
    """A host value in canonical shape (see the module docstring).

    Also accepts canonical values, so canonicalising twice changes nothing; ``values_equal``
    relies on that to compare a stored snapshot with a fresh read.
    """
    if is_blank(value):
        return None
    name = host.name
    kind = host.type
    if kind in ("text", "email", "phone", "url", "choice"):
        return _to_text(name, value) or None
    if kind == "integer":
        return _to_int(name, value)
    if kind == "decimal":
        return format(_to_decimal(name, value, _decimal_places(zoho)), "f")
    if kind == "boolean":
        return _canonical_bool(name, value)
    if kind == "date":
        return _canonical_date(name, value)
    if kind == "datetime":
        return _canonical_datetime(name, value, zone)
    return _canonical_list(name, value)  # multichoice


# --- values: canonical -> Zoho wire ---------------------------------------------------------


def canonical_to_wire(canonical: Any, host: HostField, zoho: ZohoField, zone: tzinfo) -> Any:
    """A canonical value in the JSON shape Zoho's field expects (types only).

    Zoho's own limits (lengths, picklists, digits) are checked by ``check_wire_value``, so
    they are applied identically to values from here and to payloads built elsewhere.
    """
    name = zoho.api_name
    kind = zoho.data_type
    if kind in LOOKUP_TYPES:
        raise CoercionError(name, canonical, "lookup fields are read-only for the sync")
    if kind == "boolean":
        return bool(canonical) if canonical is not None else False
    if kind == "multiselectpicklist":
        return list(_canonical_list(name, canonical) or []) if canonical is not None else []
    if canonical is None:
        return None
    if kind in STRING_TYPES:
        return _to_text(name, canonical)
    if kind in INTEGER_TYPES:
        number = _to_int(name, canonical)
        return str(number) if zoho.json_type == "string" else number
    if kind in DECIMAL_TYPES:
        return float(_to_decimal(name, canonical, _decimal_places(zoho)))
    if kind == "date":
        return _canonical_date(name, canonical)
    if kind == "datetime":
        return format_datetime(parse_datetime(_canonical_datetime(name, canonical, zone)), zone)
    raise CoercionError(name, canonical, f"Zoho {kind} fields cannot be synced")


def check_wire_value(zoho: ZohoField, wire: Any, warnings: list[str] | None = None) -> Any:
    """Apply Zoho's limits to a value about to be sent; return the value to send.

    Over-long single- and multi-line text is cut to the field's length with a warning: that is
    the documented fallback, because losing the tail of a note beats losing the whole
    record. Over-long emails, phones and URLs are refused instead, since a cut one is wrong.
    """
    name = zoho.api_name
    kind = zoho.data_type
    if wire is None:
        return None
    if kind in STRING_TYPES:
        if not isinstance(wire, str):
            raise CoercionError(name, wire, f"Zoho expects text in this {kind} field")
        limit = zoho.max_length
        if limit is not None and len(wire) > limit:
            if kind not in ("text", "textarea"):
                raise CoercionError(
                    name, wire, f"longer than the {limit} characters Zoho allows for a {kind}"
                )
            if warnings is not None:
                warnings.append(
                    f"{name}: value cut from {len(wire)} to {limit} characters to fit Zoho"
                )
            wire = wire[:limit].rstrip()
        if kind == "email" and wire and not _EMAIL_PATTERN.match(wire):
            raise CoercionError(name, wire, "not an email address")
        if kind == "picklist" and zoho.picklist_values and wire not in zoho.picklist_values:
            raise CoercionError(
                name, wire, f"not one of Zoho's picklist values ({_plural(zoho.picklist_values)})"
            )
        return wire
    if kind == "multiselectpicklist":
        if not isinstance(wire, list) or not all(isinstance(item, str) for item in wire):
            raise CoercionError(name, wire, "Zoho expects a list of choices")
        unknown = [item for item in wire if item not in zoho.picklist_values]
        if zoho.picklist_values and unknown:
            raise CoercionError(name, wire, f"{_plural(unknown)} not in Zoho's picklist")
        return wire
    if kind in INTEGER_TYPES:
        number = _to_int(name, wire)
        digits = MAX_INTEGER_DIGITS[kind]
        if len(str(abs(number))) > digits:
            raise CoercionError(name, wire, f"more than the {digits} digits Zoho allows")
        return str(number) if zoho.json_type == "string" else number
    if kind in DECIMAL_TYPES:
        if isinstance(wire, bool) or not isinstance(wire, int | float):
            raise CoercionError(name, wire, "Zoho expects a number")
        if len(str(int(abs(wire)))) > MAX_DECIMAL_INTEGER_DIGITS:
            raise CoercionError(name, wire, "more than 16 digits before the decimal point")
        return wire
    if kind == "boolean" and not isinstance(wire, bool):
        raise CoercionError(name, wire, "Zoho expects true or false")
    if kind == "date":
        return _canonical_date(name, wire)
    if kind == "datetime":
        try:
            parse_datetime(wire)  # Zoho refuses a datetime without an offset (reference §8)
        except ZohoTimeFormatError as exc:
            raise CoercionError(name, wire, str(exc)) from None
    return wire


def to_zoho_value(
    value: Any,
    host: HostField,
    zoho: ZohoField,
    zone: tzinfo,
    *,
    warnings: list[str] | None = None,
) -> Any:
    """A host value as Zoho's field should receive it; fallbacks are noted in ``warnings``."""
    canonical = host_to_canonical_value(value, host, zoho, zone)
    return check_wire_value(zoho, canonical_to_wire(canonical, host, zoho, zone), warnings)


# --- values: Zoho wire -> canonical -> host -------------------------------------------------


def wire_to_canonical(
    wire: Any,
    zoho: ZohoField,
    host: HostField,
    zone: tzinfo,
    *,
    lookup_part: str = "name",
) -> Any:
    """A value Zoho sent, in canonical shape for ``host``'s type."""
    name = zoho.api_name
    if zoho.data_type in LOOKUP_TYPES and isinstance(wire, Mapping):
        wire = wire.get(lookup_part)
    if zoho.data_type == "boolean" and wire is None:
        return False  # a Zoho checkbox has no third state
    if is_blank(wire):
        return None
    if isinstance(wire, Mapping):
        raise CoercionError(name, wire, "Zoho sent an object where a plain value was expected")
    if zoho.data_type == "datetime" and host.type == "datetime":
        if not isinstance(wire, str):
            raise CoercionError(name, wire, "Zoho sent a date and time that is not text")
        try:
            return parse_datetime(wire).replace(microsecond=0).isoformat()
        except ZohoTimeFormatError as exc:
            raise CoercionError(name, wire, str(exc)) from None
    try:
        return host_to_canonical_value(wire, host, zoho, zone)
    except CoercionError as exc:
        raise CoercionError(name, wire, exc.reason) from None


def canonical_to_host_value(
    canonical: Any, host: HostField, zone: tzinfo, *, warnings: list[str] | None = None
) -> Any:
    """A canonical value in the Python type the host's attribute holds."""
    name = host.name
    kind = host.type
    if canonical is None:
        return [] if kind == "multichoice" else None
    if kind in ("text", "email", "phone", "url", "choice"):
        text = _to_text(name, canonical)
        if kind == "choice" and host.choices and text not in host.choices:
            raise CoercionError(name, text, f"not one of the host's choices for {host.label}")
        if host.max_length is not None and len(text) > host.max_length:
            if kind != "text":
                raise CoercionError(
                    name, text, f"longer than the {host.max_length} characters {name} holds"
                )
            if warnings is not None:
                warnings.append(
                    f"{name}: value cut from {len(text)} to {host.max_length} characters"
                )
            text = text[: host.max_length].rstrip()
        return text
    if kind == "integer":
        return _to_int(name, canonical)
    if kind == "decimal":
        return _to_decimal(name, canonical, None)
    if kind == "boolean":
        return _canonical_bool(name, canonical)
    if kind == "date":
        return parse_date(_canonical_date(name, canonical))
    if kind == "datetime":
        instant = parse_datetime(_canonical_datetime(name, canonical, zone))
        return instant if host.datetime_aware else instant.astimezone(zone).replace(tzinfo=None)
    choices = _canonical_list(name, canonical) or []
    unknown = [item for item in choices if host.choices and item not in host.choices]
    if unknown:
        raise CoercionError(name, canonical, f"{_plural(unknown)} not among the host's choices")
    return choices


def to_host_value(
    value: Any,
    zoho: ZohoField,
    host: HostField,
    zone: tzinfo,
    *,
    lookup_part: str = "name",
    warnings: list[str] | None = None,
) -> Any:
    """A value Zoho sent, as the host's attribute should hold it."""
    canonical = wire_to_canonical(value, zoho, host, zone, lookup_part=lookup_part)
    return canonical_to_host_value(canonical, host, zone, warnings=warnings)


# --- comparing ------------------------------------------------------------------------------


def comparable(
    value: Any,
    host: HostField,
    zoho: ZohoField | None,
    zone: tzinfo,
    *,
    blank_is_false: bool = True,
) -> Any:
    """Reduce a value to what matters when asking "did it change?".

    Differences neither side can keep are ignored: case in an email, whitespace, list order,
    sub-second time, digits past Zoho's decimal places, and text past the shorter of the two
    field lengths (that tail was cut on the way, and must not look like an edit next time).
    A blank boolean equals False (a Zoho checkbox has no third state) unless
    ``blank_is_false`` is off, as for subscription status, where blank means "unknown".
    """
    try:
        canonical = host_to_canonical_value(value, host, zoho, zone)
    except CoercionError:
        return value.strip() if isinstance(value, str) else value
    if canonical is None:
        return False if host.type == "boolean" and blank_is_false else None
    if host.type == "multichoice":
        return frozenset(canonical)
    if host.type == "decimal":
        return Decimal(canonical)
    if isinstance(canonical, str) and host.type in ("text", "email", "phone", "url", "choice"):
        if host.type == "email" or (zoho is not None and zoho.data_type == "email"):
            canonical = canonical.casefold()
        limits = [host.max_length]
        if zoho is not None and zoho.data_type in ("text", "textarea"):
            limits.append(zoho.max_length)
        known = [limit for limit in limits if limit]
        if known:
            canonical = canonical[: min(known)].rstrip()
    return canonical
