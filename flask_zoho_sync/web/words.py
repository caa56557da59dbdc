"""The words the admin pages use for the values the sync stores.

Runs and history rows keep short codes (``pull``, ``since_last``, ``admin-now``, ``error``)
because the engine, the CLI's JSON and the tests read them. An admin reads sentences, so
every code that reaches a page goes through one of these tables or filters; a code missing
from a table is shown as "other" rather than as itself, and the words test
(``tests/web/test_words.py``) scans every page for codes that slipped through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .blueprint import bp

RUN_KINDS = {
    "sync": "Both ways",
    "push": "To Zoho",
    "pull": "From Zoho",
    "revert": "Revert of an earlier run",
}
RUN_MODES = {
    "all": "all records",
    "since_last": "changes since the last sync",
    "outbox": "edits saved on this site",
    "ids": "records Zoho reported changed",
    "run": "what one earlier run changed",
}
RUN_TRIGGERS = {
    "admin": "Started by an admin",
    "admin-now": "Started by an admin, run in the request",
    "admin-plan": "Preview",
    "auto": "Automatic, after edits on this site",
    "schedule": "Scheduled pull",
    "notify": "Zoho reported a change",
    "cli": "Command line",
}
RUN_STATUSES = {
    "running": "Running",
    "succeeded": "Succeeded",
    "partial": "Some records failed",
    "failed": "Failed",
    "needs_confirmation": "Waiting for deletions to be confirmed",
    "interrupted": "Interrupted",
    "stopped": "Stopped: the settings changed",
    "paused": "Paused: waiting for Zoho credits",
}
#: A history row's action, as the run and contact pages say it.
ACTIONS = {
    "create": "Created",
    "update": "Updated",
    "link": "Linked by email",
    "delete": "Deleted",
    "error": "Failed",
    "skip": "Not reverted",
    "merge": "Merged into another contact",
    "keep": "Kept apart from its pair",
    "convert": "Converted in Zoho",
    "left_alone": "Left alone",
    "unlink": "Unlinked: it left the sync's scope",
}
DIRECTIONS = {"to_zoho": "To Zoho", "to_host": "To this site"}
#: Why records were skipped (counted by the engine, never stored one by one).
SKIP_REASONS = {
    "skipped_deleted": "deleted on this site before, so not brought back",
    "skipped_new": "new in Zoho, and this site does not take new contacts",
    "skipped_blank": "no mapped field beyond the email has a value",
    "skipped_pair": "left unlinked: a merge in Zoho paired it with another contact",
    "skipped_mode": "the sync mode (export, import or update only) does not make that write",
    "skipped_out_of_scope": "outside what syncs (the What syncs page)",
    "skipped_left_scope": "let go when it left what syncs, and not brought back",
}


#: Zoho's field types (``data_type``) as its own web UI names them.
ZOHO_TYPES = {
    "text": "single line",
    "textarea": "multi-line",
    "email": "email",
    "phone": "phone",
    "website": "URL",
    "picklist": "pick list",
    "multiselectpicklist": "multi-select",
    "integer": "number",
    "bigint": "long integer",
    "double": "decimal",
    "decimal": "decimal",
    "currency": "currency",
    "percent": "percent",
    "boolean": "checkbox",
    "date": "date",
    "datetime": "date/time",
    "lookup": "lookup",
    "ownerlookup": "user (owner)",
    "userlookup": "user",
    "autonumber": "auto-number",
    "formula": "formula",
    "fileupload": "file upload",
    "imageupload": "image upload",
    "profileimage": "image",
    "multiselectlookup": "multi-select lookup",
    "textarea_rich": "rich text",
}
#: The host's field types (``HostField.type``).
HOST_TYPES = {
    "text": "text",
    "email": "email",
    "phone": "phone",
    "url": "web address",
    "choice": "choice",
    "multichoice": "several choices",
    "integer": "whole number",
    "decimal": "decimal",
    "boolean": "yes/no",
    "date": "date",
    "datetime": "date and time",
}


def _word(table: Mapping[str, str], value: Any) -> str:
    if value is None or value == "":
        return "—"
    return table.get(str(value), "other")


def plural(count: int | None, singular: str, plural_form: str | None = None) -> str:
    """``1 call``, ``2 calls``, ``10,000 records``: a number with its noun agreeing."""
    number = int(count or 0)
    noun = singular if number == 1 else (plural_form or f"{singular}s")
    return f"{number:,} {noun}"


@bp.app_template_filter("zs_plural")
def plural_filter(count: int | None, singular: str, plural_form: str | None = None) -> str:
    return plural(count, singular, plural_form)


@bp.app_template_filter("zs_run_kind")
def run_kind(value: str | None) -> str:
    return _word(RUN_KINDS, value)


@bp.app_template_filter("zs_run_mode")
def run_mode(value: str | None) -> str:
    return _word(RUN_MODES, value)


@bp.app_template_filter("zs_run_trigger")
def run_trigger(value: str | None) -> str:
    if value and value.startswith("revert:"):  # sync.revert.REVERT_TRIGGER and the run id
        return f"Revert of run {value.partition(':')[2]}"
    return _word(RUN_TRIGGERS, value)


@bp.app_template_filter("zs_run_status")
def run_status(value: str | None) -> str:
    return _word(RUN_STATUSES, value)


@bp.app_template_filter("zs_action")
def action(value: str | None) -> str:
    return _word(ACTIONS, value)


@bp.app_template_filter("zs_direction")
def direction(value: str | None) -> str:
    return _word(DIRECTIONS, value)


@bp.app_template_filter("zs_zoho_type")
def zoho_type(value: str | None) -> str:
    return ZOHO_TYPES.get(str(value), "other type") if value else "—"


@bp.app_template_filter("zs_host_type")
def host_type(value: str | None) -> str:
    return HOST_TYPES.get(str(value), "other type") if value else "—"


def skipped(counts: Mapping[str, int] | None, direction: str | None = None) -> dict[str, int]:
    """Skipped records of a run by reason (words), from its counts."""
    found: dict[str, int] = {}
    for key, value in (counts or {}).items():
        side, _, what = key.partition(".")
        if not what.startswith("skipped") or not value:
            continue
        if direction is not None and side != direction:
            continue
        reason = SKIP_REASONS.get(what, "skipped for another reason")
        found[reason] = found.get(reason, 0) + int(value)
    return found


def skipped_total(counts: Mapping[str, int] | None) -> int:
    return sum(skipped(counts).values())
