"""Whether the database holds the tables the sync needs, and the one sentence when it does not.

The extension never creates tables itself (the host owns its schema, through Alembic or
``db.create_all()``), so on a fresh database every query would end in a driver traceback
that names one table and hides the remedy. The CLI and the admin pages ask here first.
The answer "all present" is cached per engine, because tables do not vanish under a running
app and the admin pages must not pay an inspection per request; a negative answer is not
cached, so the pages work as soon as the operator has run the migration.
"""

from __future__ import annotations

import weakref
from typing import Any

import sqlalchemy as sa

from .errors import ZohoSyncError
from .models import Base

#: Marks a missing column in ``missing_tables``' answer (``table.column (column)``).
COLUMN_MARK = " (column)"

#: Engines whose tables were all found; weak, so a disposed test engine is forgotten.
_COMPLETE: weakref.WeakSet[sa.Engine] = weakref.WeakSet()

#: SQLSTATEs of PostgreSQL (and the SQLite phrases) that mean "that table does not exist".
_UNDEFINED_TABLE_SQLSTATE = "42P01"
#: PostgreSQL's lock_not_available, deadlock_detected: the write may succeed later.
_BUSY_SQLSTATES = frozenset({"55P03", "40P01"})


class MissingTablesError(ZohoSyncError):
    """The database lacks tables the sync reads; the message says which and what to run."""

    def __init__(self, tables: list[str]) -> None:
        self.tables = tables
        super().__init__(describe_missing(tables))


class DatabaseUnreachableError(ZohoSyncError):
    """The database did not answer the inspection, so nothing can be said about its tables."""


def describe_missing(missing: list[str]) -> str:
    """One line for the CLI and the 503 page alike. ``missing`` names tables, and columns
    as ``table.column`` (``COLUMN_MARK``) of tables an earlier version created."""
    columns = [name.removesuffix(COLUMN_MARK) for name in missing if name.endswith(COLUMN_MARK)]
    tables = [name for name in missing if not name.endswith(COLUMN_MARK)]
    if not columns:
        return (
            f"The database lacks the table{'s' if len(tables) > 1 else ''} "
            f"{', '.join(tables)}: create them with 'flask db upgrade' (Flask-Migrate/Alembic; "
            "run 'flask db migrate' first so the migration includes Flask-Zoho-Sync's tables) "
            "or with db.create_all() in an app context, then try again."
        )
    parts = []
    if tables:
        parts.append(f"the table{'s' if len(tables) > 1 else ''} {', '.join(tables)}")
    parts.append(f"the column{'s' if len(columns) > 1 else ''} {', '.join(columns)}")
    return (
        f"The database lacks {' and '.join(parts)} (this version of Flask-Zoho-Sync added "
        "them): add them with 'flask db migrate' then 'flask db upgrade' (Flask-Migrate/"
        "Alembic; db.create_all() creates missing tables but adds no column to a table that "
        "exists), then try again."
    )


def expected_tables(adapter: Any) -> list[tuple[str | None, str]]:
    """(schema, name) of the extension's tables and of the adapter's contact table."""
    wanted: list[tuple[str | None, str]] = [
        (table.schema, table.name) for table in Base.metadata.sorted_tables
    ]
    model = getattr(adapter, "model", None)
    table = getattr(model, "__table__", None)
    if isinstance(table, sa.Table):
        wanted.append((table.schema, table.name))
    return wanted


def missing_tables(engine: sa.Engine, adapter: Any) -> list[str]:
    """Names of the needed tables the database lacks (empty when all are there)."""
    if engine in _COMPLETE:
        return []
    try:
        inspector = sa.inspect(engine)
        present: dict[str | None, set[str]] = {}
        missing = []
        for schema, name in expected_tables(adapter):
            if schema not in present:
                present[schema] = set(inspector.get_table_names(schema=schema))
            if name not in present[schema]:
                missing.append(f"{schema}.{name}" if schema else name)
        missing += _missing_columns(inspector, present)
    except sa.exc.OperationalError as exc:
        url = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnreachableError(
            f"The database at {url} did not answer ({_first_line(exc.orig)}); check "
            "SQLALCHEMY_DATABASE_URI and that the server runs, then try again."
        ) from None
    if not missing:
        _COMPLETE.add(engine)
    return missing


def _missing_columns(inspector: Any, present: dict[str | None, set[str]]) -> list[str]:
    """Columns of the extension's own tables that exist without them: a database an earlier
    version created, which ``create_all()`` does not change (the host's table is its own)."""
    missing = []
    for table in Base.metadata.sorted_tables:
        if table.name not in present.get(table.schema, set()):
            continue
        found = {column["name"] for column in inspector.get_columns(table.name, table.schema)}
        missing += [
            f"{table.name}.{column.name}{COLUMN_MARK}"
            for column in table.columns
            if column.name not in found
        ]
    return missing


def require_tables(engine: sa.Engine, adapter: Any) -> None:
    """Raise :class:`MissingTablesError` unless every needed table exists."""
    missing = missing_tables(engine, adapter)
    if missing:
        raise MissingTablesError(missing)


def forget_checked(engine: sa.Engine) -> None:
    """Check this engine again next time (a test or a host that dropped the tables)."""
    _COMPLETE.discard(engine)


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def is_missing_table(exc: sa.exc.DBAPIError) -> bool:
    """The statement failed because a table does not exist (SQLite or PostgreSQL)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE_SQLSTATE:
        return True
    return "no such table" in str(orig).lower()


def is_busy(exc: sa.exc.DBAPIError) -> bool:
    """The statement failed because another write holds a lock; a retry may succeed."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    text = str(orig).lower()
    return "database is locked" in text or "database table is locked" in text
