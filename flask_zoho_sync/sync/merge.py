"""Three-way merge of one contact, field by field, against the last-synced snapshot.

Comparing each side with what both held after the last sync (the *base*) tells who changed
what. That is the whole point: a host edit of the phone and a Zoho edit of the job title are
both kept, where whole-record last-writer-wins would throw one of them away (peers §4.7).
Only a field both sides changed to different values is a conflict, and only that field is
decided by the policy.

``new_base`` is what both sides hold once the writes are done. Storing it as the next base
is what prevents loops and flip-flops (peers §4.1): the write we make is not seen as a change
next time, because the base already holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from flask_zoho_sync.sync.coercion import Direction, is_blank
from flask_zoho_sync.sync.mapping import Binding, ConflictPolicy, Mapping
from flask_zoho_sync.sync.modes import LeftAlone
from flask_zoho_sync.zoho.timefmt import UTC

Side = Literal["host", "zoho"]
Equal = Callable[[Any, Any], bool]

#: Sentinel for "this side did not report the key", as opposed to None ("blank").
_ABSENT: Any = object()


@dataclass(frozen=True)
class Conflict:
    """Both sides changed one key to different values; ``resolution`` says who won and why."""

    key: str
    base: Any
    host: Any
    zoho: Any
    resolution: Side
    reason: str


@dataclass(frozen=True)
class MergeResult:
    """What to write where, what was contested, and the snapshot to store afterwards."""

    to_zoho: dict[str, Any] = field(default_factory=dict)
    to_host: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    new_base: dict[str, Any] = field(default_factory=dict)
    #: Writes the run's mode or a row's overwrite policy refused (``sync.skips.restrain``).
    left_alone: list[LeftAlone] = field(default_factory=list)

    @property
    def has_writes(self) -> bool:
        return bool(self.to_zoho or self.to_host)


def _utc_second(moment: datetime) -> datetime:
    """Zoho's times have whole seconds; compare the host's at the same precision.

    A naive time is taken as UTC, the one clock the extension stores times in.
    """
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=0)


def resolve_conflict(
    policy: ConflictPolicy,
    host_modified_at: datetime | None,
    zoho_modified_at: datetime | None,
) -> tuple[Side, str]:
    """Who wins a conflict under ``policy``, with the reason shown in the record's history.

    Ties, and records whose modification times are unknown, go to the host: the host is where
    the contact themselves makes changes, so it is the safer side to keep.
    """
    if policy is ConflictPolicy.HOST_WINS:
        return "host", "conflict policy says the host wins"
    if policy is ConflictPolicy.ZOHO_WINS:
        return "zoho", "conflict policy says Zoho wins"
    if host_modified_at is None or zoho_modified_at is None:
        return "host", "newest wins, but a modification time is unknown, so the host wins"
    host_at, zoho_at = _utc_second(host_modified_at), _utc_second(zoho_modified_at)
    if zoho_at > host_at:
        return "zoho", f"newest wins: Zoho changed at {zoho_at:%Y-%m-%d %H:%M:%S}Z, after the host"
    if host_at > zoho_at:
        return "host", f"newest wins: the host changed at {host_at:%Y-%m-%d %H:%M:%S}Z, after Zoho"
    return "host", "newest wins, but both changed in the same second; ties go to the host"


class _KeyMerge:
    """The decision for one key, accumulated into the result."""

    def __init__(self, result: MergeResult, binding: Binding, known: bool, base: Any) -> None:
        self.result = result
        self.binding = binding
        self.key = binding.key
        self.known = known
        self.base = base

    def retarget(self, binding: Binding, known: bool, base: Any) -> None:
        """Decide the next key with the same object: a merge runs for every record of an
        import, and an object per key was a measurable share of it."""
        self.binding = binding
        self.key = binding.key
        self.known = known
        self.base = base

    def keep(self, value: Any) -> None:
        self.result.new_base[self.key] = value

    def write_zoho(self, value: Any) -> None:
        self.result.to_zoho[self.key] = value
        self.keep(value)

    def write_host(self, value: Any) -> None:
        self.result.to_host[self.key] = value
        self.keep(value)

    def conflict(self, host: Any, zoho: Any, resolution: Side, reason: str) -> None:
        self.result.conflicts.append(
            Conflict(self.key, self.base if self.known else None, host, zoho, resolution, reason)
        )
        if resolution == "host":
            self.write_zoho(host)
        else:
            self.write_host(zoho)


def merge(
    base: MappingABC[str, Any] | None,
    host: MappingABC[str, Any],
    zoho: MappingABC[str, Any],
    mapping: Mapping,
    *,
    host_modified_at: datetime | None,
    zoho_modified_at: datetime | None,
) -> MergeResult:
    """Merge one contact: ``base`` is the last-synced snapshot (None before the first link).

    All three dicts are canonical (``Mapping.host_to_canonical`` / ``zoho_to_canonical``).
    A key missing from ``host`` or ``zoho`` means that side did not report it and is taken
    as unchanged; a key missing from a non-None ``base`` is a newly mapped key, merged as on a
    first link. On a first link a blank never overwrites a value: linking two existing records
    must not erase data on either side.
    """
    result = MergeResult()
    step: _KeyMerge | None = None
    for binding in mapping.active_bindings():
        key = binding.key
        known = base is not None and key in base
        base_value = base[key] if base is not None and known else None
        host_value = host.get(key, _ABSENT)
        zoho_value = zoho.get(key, _ABSENT)
        if host_value is _ABSENT:
            host_value = base_value
        if zoho_value is _ABSENT:
            zoho_value = base_value
        if step is None:
            step = _KeyMerge(result, binding, known, base_value)
        else:
            step.retarget(binding, known, base_value)
        equal = mapping.equality(key)

        if binding.is_subscription:
            _merge_subscription(step, host_value, zoho_value, equal)
        elif binding.direction is Direction.TO_ZOHO:
            _merge_one_way(step, source=host_value, target=zoho_value, equal=equal, to="zoho")
        elif binding.direction is Direction.TO_HOST:
            _merge_one_way(step, source=zoho_value, target=host_value, equal=equal, to="host")
        else:
            _merge_both(step, host_value, zoho_value, equal, host_modified_at, zoho_modified_at)
    return result


def merge_new(zoho: MappingABC[str, Any], mapping: Mapping) -> MergeResult:
    """``merge(None, {}, zoho, ...)``: a Zoho record the host has no contact for yet.

    An import merges every record this way before creating its contact, and the general
    merge's per-key machinery was a tenth of the import's time. With no base and nothing on
    the host's side nothing can conflict: a key only the host writes stays blank, and every
    other key takes Zoho's value, written to the host unless it equals a blank. The result
    is the general merge's (``tests/sync/test_merge_properties.py`` checks it).
    """
    result = MergeResult()
    to_host, new_base = result.to_host, result.new_base
    for binding in mapping.active_bindings():
        key = binding.key
        if binding.direction is Direction.TO_ZOHO and not binding.is_subscription:
            new_base[key] = None
            continue
        value = zoho.get(key)
        if not mapping.values_equal(key, None, value):
            to_host[key] = value
        new_base[key] = value
    return result


def _merge_one_way(step: _KeyMerge, *, source: Any, target: Any, equal: Equal, to: Side) -> None:
    """A one-way key follows its source side; edits on the target side are ignored.

    The base tracks the source, so an ignored target edit stays ignored on every later run
    instead of being reverted or re-reported.
    """
    source_changed = not step.known or not equal(step.base, source)
    first_link_blank = not step.known and is_blank(source)
    if source_changed and not first_link_blank and not equal(source, target):
        if to == "zoho":
            step.write_zoho(source)
        else:
            step.write_host(source)
    else:
        step.keep(source)


def _is_unset_on_first_link(binding: Binding) -> Callable[[Any], bool]:
    if binding.kind == "group":
        return lambda value: is_blank(value) or value is False
    return is_blank


def _merge_both(
    step: _KeyMerge,
    host: Any,
    zoho: Any,
    equal: Equal,
    host_modified_at: datetime | None,
    zoho_modified_at: datetime | None,
) -> None:
    if equal(host, zoho):
        step.keep(zoho if is_blank(host) else host)
        return
    if step.known:
        host_changed = not equal(step.base, host)
        zoho_changed = not equal(step.base, zoho)
        if host_changed and not zoho_changed:
            step.write_zoho(host)
            return
        if zoho_changed and not host_changed:
            step.write_host(zoho)
            return
    else:
        # On a first link, "not a member" is no more a decision than a blank field is: a
        # group ticked on either side stays ticked, so linking never drops a membership.
        unset = _is_unset_on_first_link(step.binding)
        if unset(host):
            step.write_host(zoho)
            return
        if unset(zoho):
            step.write_zoho(host)
            return
    resolution, reason = resolve_conflict(step.binding.policy, host_modified_at, zoho_modified_at)
    if not step.known:
        reason = f"first link, values differ; {reason}"
    step.conflict(host, zoho, resolution, reason)


def _merge_subscription(step: _KeyMerge, host: Any, zoho: Any, equal: Equal) -> None:
    """Subscription status: an opt-out is never undone by a sync, only by the contact.

    A change the host reports is the contact's own (they unsubscribed or re-subscribed in the
    host), so it reaches Zoho either way. A Zoho-side opt-out reaches the host. But Zoho saying
    "subscribed" never re-subscribes a host contact who opted out: the opt-out is written back
    to Zoho instead. Any other disagreement is settled in favour of the opt-out (peers §4.7:
    unsubscribes that do not flow are a legal exposure, spurious ones are not).
    """
    if host is None and step.known:
        host = step.base
    if zoho is None and step.known:
        zoho = step.base
    if equal(host, zoho):
        step.keep(zoho if host is None else host)
        return
    if host is None:
        step.write_host(zoho)
        return
    if zoho is None:
        step.write_zoho(host)
        return
    host_changed = step.known and not equal(step.base, host)
    zoho_changed = step.known and not equal(step.base, zoho)
    if host_changed and not zoho_changed:
        step.write_zoho(host)
        return
    if zoho_changed and not host_changed and zoho is False:
        step.write_host(False)
        return
    if host is False:
        step.conflict(
            host,
            zoho,
            "host",
            "the contact opted out in the host; an opt-out is never undone by a sync, "
            "so Zoho is set back to opted out",
        )
    else:
        step.conflict(
            host, zoho, "zoho", "Zoho has the contact opted out; the opt-out wins over the sync"
        )


def diff(
    before: MappingABC[str, Any], after: MappingABC[str, Any], mapping: Mapping
) -> dict[str, tuple[Any, Any]]:
    """The keys whose value differs between two canonical dicts, as ``(old, new)``.

    Used for history and dry-run plans, so it uses the same notion of "equal" as the merge:
    a plan never shows a change the sync would not make.
    """
    changes: dict[str, tuple[Any, Any]] = {}
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key), after.get(key)
        if not mapping.values_equal(key, old, new):
            changes[key] = (old, new)
    return changes
