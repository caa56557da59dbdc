"""Numbers the admin pages take from URLs: row ids in paths and the history's ``?page=``.

Both go straight into SQL, and the databases store ids as signed 64-bit integers: SQLite's
driver raises ``OverflowError`` on anything larger, so an unchecked
``/history/runs/9223372036854775808`` was a 500. Bounding them here, once, means every view
gets a number its database can hold; an id outside the range cannot name a row, so the URL
simply does not match (404), and a page number that cannot exist is a 400 that says so.
"""

from __future__ import annotations

import re

from flask import abort, make_response, render_template, request
from werkzeug.routing import BaseConverter, ValidationError

#: The largest value a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT) holds.
MAX_DATABASE_ID = 2**63 - 1
#: Name the converter is registered under on the host's URL map; prefixed so it cannot
#: clash with a converter of the host's own.
ID_CONVERTER = "zoho_sync_id"

# At most 19 digits (len(str(MAX_DATABASE_ID))), so int() never sees a huge digit string.
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_database_id(text: str) -> int | None:
    """``text`` as a row id (1 .. 2**63-1), or None when no row can have it."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_DATABASE_ID else None


class DatabaseIdConverter(BaseConverter):
    """``<zoho_sync_id:run_id>``: a positive id a signed 64-bit column can hold.

    Anything else makes the rule not match, so the request is a plain 404, as for any
    other id that names no row.
    """

    regex = r"\d+"
    part_isolating = True

    def to_python(self, value: str) -> int:
        parsed = parse_database_id(value)
        if parsed is None:
            raise ValidationError()
        return parsed

    def to_url(self, value: object) -> str:
        return str(int(value))  # type: ignore[call-overload]


def page_number(page_size: int) -> int:
    """The ``?page=`` asked for (1 when absent), or a 400 page saying what is wrong.

    The bound keeps ``(page - 1) * page_size`` (the SQL OFFSET) inside 64 bits.
    """
    raw = request.args.get("page")
    if raw is None or raw == "":
        return 1
    highest = MAX_DATABASE_ID // page_size + 1
    parsed = parse_database_id(raw.strip())
    if parsed is None or parsed > highest:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        page = render_template(
            "zoho_sync/error.html",
            title="No such page",
            message=f"{shown!r} is not a page number: pages are numbered from 1 to "
            f"{highest}. Go back to the first page and page from there.",
        )
        abort(make_response(page, 400))
    return parsed
