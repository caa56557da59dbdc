"""Take out of a merge's writes the ones the run's mode or a row's overwrite policy refuses.

The merge (``sync.merge``) stays the one place that decides who should win; this is applied
to its result, by the pull for every record it merges and by the push for what it sends, so
a refused write is the same whether a plan or a run meets it.

A refused write leaves that side's value where it is, and the base (what the next merge
compares with) takes the value the target side keeps. The next run then sees the same
difference and refuses it again, rather than taking the untouched side for an edit and
writing it back across: an export-only run never "reverts" a Zoho edit it was told to
ignore, and a fill-blanks field never flips between the two values.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import replace
from typing import Any

from flask_zoho_sync.sync.coercion import is_blank
from flask_zoho_sync.sync.context import PlannedChange, RunReport, readable
from flask_zoho_sync.sync.mapping import Mapping
from flask_zoho_sync.sync.merge import Conflict, MergeResult
from flask_zoho_sync.sync.modes import LeftAlone, Side, WriteRules

#: A planned change's action for a write the run may not make (``PlannedChange.action``).
LEFT_ALONE = "left_alone"


def is_unset(mapping: Mapping, key: str, value: Any) -> bool:
    """Whether ``value`` counts as "no value" for fill-blanks: a blank, or an unticked group
    (not being a member is no more a value than an empty field is)."""
    if is_blank(value):
        return True
    return key.startswith("group:") and value is False


def restrain(
    result: MergeResult,
    rules: WriteRules,
    mapping: Mapping,
    *,
    host: MappingABC[str, Any],
    zoho: MappingABC[str, Any],
    first_link: bool,
) -> MergeResult:
    """``result`` without the writes ``rules`` refuse, each listed in ``left_alone``.

    ``host`` and ``zoho`` are the values each side holds now (canonical), so fill-blanks
    can tell whether the target is empty; ``first_link`` says whether this merge links the
    record (or creates it), which first-sync-only rows need.
    """
    if not rules.restrains:
        return result
    to_host, to_zoho = dict(result.to_host), dict(result.to_zoho)
    new_base = dict(result.new_base)
    left = list(result.left_alone)
    conflicts = _source_wins(result, rules, host, zoho, to_host, to_zoho, new_base)
    sides: tuple[tuple[Side, dict[str, Any], MappingABC[str, Any]], ...] = (
        ("host", to_host, host),
        ("zoho", to_zoho, zoho),
    )
    for side, writes, current in sides:
        for key in list(writes):
            held = current.get(key)
            reason = rules.refusal(
                key,
                side,
                target_blank=is_unset(mapping, key, held),
                first_link=first_link,
            )
            if reason is None:
                continue
            left.append(LeftAlone(key, side, writes.pop(key), reason))
            new_base[key] = held
    if len(left) == len(result.left_alone) and conflicts == result.conflicts:
        return result
    return MergeResult(
        to_zoho=to_zoho,
        to_host=to_host,
        conflicts=conflicts,
        new_base=new_base,
        left_alone=left,
    )


def _source_wins(
    result: MergeResult,
    rules: WriteRules,
    host: MappingABC[str, Any],
    zoho: MappingABC[str, Any],
    to_host: dict[str, Any],
    to_zoho: dict[str, Any],
    new_base: dict[str, Any],
) -> list[Conflict]:
    """In a one-way mode the source side wins every conflict: a field both sides changed
    that the policy gave to the side the mode never writes goes the other way instead
    (export only: this site's value to Zoho; import only: Zoho's to this site). The
    subscription keeps its own rule (an opt-out is never undone), so it is only left alone.
    """
    if rules.writes_host and rules.writes_zoho:
        return list(result.conflicts)
    # The side the mode never writes is the source; its value goes to the other side.
    source_side: Side = "host" if not rules.writes_host else "zoho"
    source, writes, lost = (
        (host, to_zoho, to_host) if source_side == "host" else (zoho, to_host, to_zoho)
    )
    reason = (
        "export-only mode: this site's value wins"
        if source_side == "host"
        else "import-only mode: Zoho's value wins"
    )
    settled: list[Conflict] = []
    for conflict in result.conflicts:
        key = conflict.key
        if conflict.resolution != source_side and key in lost and key != "system:subscription":
            lost.pop(key)
            writes[key] = source.get(key)
            new_base[key] = source.get(key)
            conflict = replace(
                conflict, resolution=source_side, reason=f"{conflict.reason}; {reason}"
            )
        settled.append(conflict)
    return settled


def restrain_push(
    changed: dict[str, Any],
    rules: WriteRules,
    mapping: Mapping,
    *,
    base: MappingABC[str, Any] | None,
    first_link: bool,
) -> tuple[dict[str, Any], list[LeftAlone]]:
    """The push's values for one contact without the ones ``rules`` refuse.

    The push does not read Zoho before deciding (its re-read comes later, per batch, and
    merges through the pull, which restrains as above): what Zoho holds is the link's base,
    which is Zoho's value unless Zoho changed since, and then the re-read finds it. A key
    the base lacks on a record linked before this run (a row mapped since) has no known
    Zoho value, so fill-blanks leaves it until a full sync has read it. A key the base
    lacks on a record linked in this run is one the pull's merge gave to Zoho, already
    restrained there.
    """
    if not rules.restrains:
        return changed, []
    kept: dict[str, Any] = {}
    left: list[LeftAlone] = []
    for key, value in changed.items():
        known = base is not None and key in base
        if known or first_link:
            reason = rules.refusal(
                key,
                "zoho",
                target_blank=not known or is_unset(mapping, key, base[key] if base else None),
                first_link=first_link,
            )
        elif rules.policy(key) == "fill_blanks":
            reason = "fill blanks only: Zoho's value is not known yet (a full sync reads it)"
        else:
            reason = rules.refusal(key, "zoho", target_blank=True, first_link=False)
        if reason is None:
            kept[key] = value
        else:
            left.append(LeftAlone(key, "zoho", value, reason))
    return kept, left


def report_left_alone(
    report: RunReport,
    mapping: Mapping,
    contact_id: str | None,
    zoho_id: str | None,
    left: list[LeftAlone],
) -> None:
    """One "left alone" entry per side a record's refused writes were kept off, naming the
    fields, the values not written and why, in the plan and in the run's report (never in
    the history, which holds what was written: a refusal repeats every run)."""
    for side in ("to_host", "to_zoho"):
        mine = [item for item in left if f"to_{item.side}" == side]
        if not mine:
            continue
        values = readable(mapping, {item.key: item.value for item in mine})
        reasons = dict.fromkeys(item.reason for item in mine)
        report.add(
            PlannedChange(
                side, LEFT_ALONE, contact_id, zoho_id, changes=values, reason="; ".join(reasons)
            )
        )


def report_refused_record(
    report: RunReport, side: str, contact_id: str | None, zoho_id: str | None, reason: str
) -> None:
    """A whole record the mode keeps off ``side`` (a create or a delete), left alone."""
    report.add(PlannedChange(side, LEFT_ALONE, contact_id, zoho_id, reason=reason))
