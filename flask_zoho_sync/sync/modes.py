"""Sync modes and per-field overwrite policies: which writes a run may make at all.

The three-way merge (``sync.merge``) decides what each side *should* get; the rules here
decide what a run is *allowed* to write, and a write they refuse is left alone with the
reason (``sync.skips``). Keeping the two apart keeps the merge the one place where who wins
is decided (the per-field winner is the mapping row's conflict policy, ``Binding.policy``),
and makes every refusal visible in the plan rather than silently missing.

* **Modes** (``ZOHO_SYNC_MODE``, the settings page, ``settings --mode``):

  - ``two_way``: both sides are read and written (the default; what every earlier version
    did).
  - ``export_only``: the host is the source. Zoho is read (to link records and to see
    what both hold) but its edits and deletions never change the host, and no host contact
    is created from a Zoho record.
  - ``import_only``: Zoho is the source. The run writes nothing to Zoho: no create,
    update or delete, and no Contact Id / Contact URL written back.
  - ``update_only``: neither side gets a new record; only records already linked, or
    matched (by email) on a first sync, are updated.

* **Overwrite policies**, per mapping row (``field_map.overwrite``):

  - ``always``: write whenever the merge says so (the default).
  - ``fill_blanks``: write only when the target side holds no value.
  - ``first_sync``: write only when the record is first linked (or created).
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Literal

Side = Literal["host", "zoho"]

TWO_WAY = "two_way"
EXPORT_ONLY = "export_only"
IMPORT_ONLY = "import_only"
UPDATE_ONLY = "update_only"
#: The sync modes, default first.
SYNC_MODES: tuple[str, ...] = (TWO_WAY, EXPORT_ONLY, IMPORT_ONLY, UPDATE_ONLY)

ALWAYS = "always"
FILL_BLANKS = "fill_blanks"
FIRST_SYNC = "first_sync"
#: The overwrite policies of a mapping row, default first.
OVERWRITE_POLICIES: tuple[str, ...] = (ALWAYS, FILL_BLANKS, FIRST_SYNC)

#: The per-field winner as the CLI names it, and the conflict policy stored for it
#: (``field_map.policy``; None follows the settings' default policy).
WINNERS: dict[str, str | None] = {
    "host": "host_wins",
    "zoho": "zoho_wins",
    "newest": "newest",
    "default": None,
}

#: The stored conflict policy of a row, as the CLI names its winner.
WINNER_OF_POLICY: dict[str, str] = {
    policy: side for side, policy in WINNERS.items() if policy is not None
}

#: How the admin pages and the plan name each mode.
MODE_LABELS: dict[str, str] = {
    TWO_WAY: "Two-way: both sides read and written",
    EXPORT_ONLY: "Export only: this site to Zoho; Zoho's edits and deletions never change it",
    IMPORT_ONLY: "Import only: Zoho to this site; nothing is ever written to Zoho",
    UPDATE_ONLY: "Update only: linked records are updated; no record is created on either side",
}
OVERWRITE_LABELS: dict[str, str] = {
    ALWAYS: "Always overwrite",
    FILL_BLANKS: "Only fill blanks",
    FIRST_SYNC: "Only on the first sync",
}


def _as_mode(value: str | None) -> str:
    mode = (value or TWO_WAY).strip().lower()
    if mode not in SYNC_MODES:
        raise ValueError(f"sync mode must be one of {', '.join(SYNC_MODES)}, not {value!r}")
    return mode


def _as_overwrite(value: str | None) -> str:
    policy = (value or ALWAYS).strip().lower()
    if policy not in OVERWRITE_POLICIES:
        raise ValueError(
            f"overwrite policy must be one of {', '.join(OVERWRITE_POLICIES)}, not {value!r}"
        )
    return policy


@dataclass(frozen=True)
class WriteRules:
    """What one run may write: its mode, and each mapping key's overwrite policy.

    ``overwrite`` maps a mapping key (``field:phone``, ``group:vip``) to its policy; a key
    not in it is ``always``. Frozen and hashable so it sits in ``EngineOptions``.
    """

    mode: str = TWO_WAY
    overwrite: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", _as_mode(self.mode))
        pairs = self.overwrite.items() if isinstance(self.overwrite, MappingABC) else self.overwrite
        object.__setattr__(
            self,
            "overwrite",
            tuple(sorted((key, _as_overwrite(policy)) for key, policy in pairs)),
        )

    @property
    def restrains(self) -> bool:
        """Whether any write could be refused; when not, the run skips the checks (an
        import of 100,000 records pays nothing for rules it does not have)."""
        return self.mode != TWO_WAY or any(policy != ALWAYS for _, policy in self.overwrite)

    def policy(self, key: str) -> str:
        return dict(self.overwrite).get(key, ALWAYS)

    @property
    def writes_zoho(self) -> bool:
        return self.mode != IMPORT_ONLY

    @property
    def writes_host(self) -> bool:
        return self.mode != EXPORT_ONLY

    def creates_on(self, side: Side) -> bool:
        """Whether a record the other side has may be created on ``side``."""
        if self.mode == UPDATE_ONLY:
            return False
        return self.writes_host if side == "host" else self.writes_zoho

    def deletes_on(self, side: Side) -> bool:
        """Whether the other side's deletion may delete the record on ``side``."""
        return self.writes_host if side == "host" else self.writes_zoho

    def refusal(self, key: str, side: Side, *, target_blank: bool, first_link: bool) -> str | None:
        """Why a write of ``key`` to ``side`` is not made, or None when it may be."""
        if side == "host" and not self.writes_host:
            return "export-only mode: Zoho never changes this site"
        if side == "zoho" and not self.writes_zoho:
            return "import-only mode: nothing is written to Zoho"
        policy = self.policy(key)
        if policy == FILL_BLANKS and not target_blank:
            where = "this site" if side == "host" else "Zoho"
            return f"fill blanks only: {where} already has a value"
        if policy == FIRST_SYNC and not first_link:
            return "first sync only: the record was linked before"
        return None


def mode_refusal(mode: str, what: str) -> str:
    """The sentence for an action a mode forbids as a whole (``what``: "create contacts in
    this site", "delete Zoho records", ...)."""
    return f"{MODE_LABELS[_as_mode(mode)].split(':')[0].lower()} mode does not {what}"


@dataclass(frozen=True)
class LeftAlone:
    """A write the merge decided and the rules refused: ``value`` stays off ``side``."""

    key: str
    side: Side
    value: object
    reason: str
