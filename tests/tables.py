"""Empty tables for every test, without creating them for every test.

A host app's tables used to be dropped and created around each database test: about a
quarter of a second each way, some 2,800 times a run. Now each test session creates them
once per database and schema, and a test starts by emptying them:

* PostgreSQL: one DELETE per table and the sequences set back to 1, in one transaction
  (TRUNCATE costs as much as creating the tables again). The database's own description of
  its tables is compared with the one taken after the last creation first, so a test that
  altered, dropped or added a table leaves the next one a schema made anew, not a stale one.
* SQLite: every test has a file of its own (``tmp_path``); a new file is a copy of a
  template made once per schema, and an existing file is made again as before.

Tests that need a database with no tables at all make one of their own
(``test_fresh_database.py``), so nothing relies on tables being dropped after a test.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: Per PostgreSQL URL: the schema key of the tables created there last, the database's
#: description of them right after, and its sequences.
_CREATED: dict[str, tuple[str, str, tuple[str, ...]]] = {}
#: Per schema key: a SQLite file holding those tables and nothing else.
_SQLITE_TEMPLATES: dict[str, Path] = {}
_TEMPLATE_DIR: list[Path] = []

_DESCRIBE_POSTGRES = sa.text(
    "SELECT coalesce(string_agg(c.relname || '.' || a.attname || ':' || a.atttypid::text"
    " || ':' || a.attnotnull::text, ',' ORDER BY c.relname, a.attnum), '')"
    " || '|' || (SELECT coalesce(string_agg(relname, ',' ORDER BY relname), '')"
    "           FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
    " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
    " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
    " AND a.attnum > 0 AND NOT a.attisdropped"
)

_SEQUENCES = sa.text(
    "SELECT relname FROM pg_class WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace"
)


def _schema_key(metadata: sa.MetaData) -> str:
    """What the metadata would create: tables, columns and their types, as text."""
    return ";".join(
        f"{table.name}(" + ",".join(f"{c.name}:{c.type!r}" for c in table.columns) + ")"
        for table in metadata.sorted_tables
    )


def fresh_tables(db: Any) -> None:
    """Give ``db`` (Flask-SQLAlchemy, in an app context) its tables, empty, as
    ``drop_all(); create_all()`` would."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        _fresh_postgres(db, engine)
    elif engine.dialect.name == "sqlite" and _fresh_sqlite(db, engine):
        return
    else:
        db.drop_all()
        db.create_all()


def _fresh_postgres(db: Any, engine: sa.Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    key = _schema_key(db.metadata)
    with engine.connect() as connection:
        described = connection.execute(_DESCRIBE_POSTGRES).scalar_one()
    created = _CREATED.get(url)
    if created is not None and created[:2] == (key, described):
        with engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())
            if created[2]:
                resets = ", ".join(f"setval('\"{name}\"', 1, false)" for name in created[2])
                connection.execute(sa.text(f"SELECT {resets}"))
        return
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    db.create_all()
    with engine.connect() as connection:
        described = connection.execute(_DESCRIBE_POSTGRES).scalar_one()
        sequences = tuple(connection.execute(_SEQUENCES).scalars())
    _CREATED[url] = (key, described, sequences)


def _fresh_sqlite(db: Any, engine: sa.Engine) -> bool:
    """Copy the template into a file that does not exist yet; False for any other case."""
    database = engine.url.database
    if not database or database == ":memory:" or Path(database).exists():
        return False
    key = _schema_key(db.metadata)
    template = _SQLITE_TEMPLATES.get(key)
    if template is None:
        if not _TEMPLATE_DIR:
            _TEMPLATE_DIR.append(Path(tempfile.mkdtemp(prefix="zoho-sync-tables-")))
        template = _TEMPLATE_DIR[0] / f"template-{len(_SQLITE_TEMPLATES)}.sqlite3"
        maker = sa.create_engine(f"sqlite:///{template}")
        db.metadata.create_all(maker)
        maker.dispose()
        _SQLITE_TEMPLATES[key] = template
    engine.dispose()  # no connection may have opened the file before it exists
    shutil.copyfile(template, database)
    return True


def release_tables(db: Any) -> None:
    """End a test's use of ``db``: sessions and connections go; the tables stay for the
    next test, which empties them (:func:`fresh_tables`)."""
    db.session.remove()
    db.engine.dispose()


def remove_templates() -> None:
    """At the end of the session."""
    for folder in _TEMPLATE_DIR:
        shutil.rmtree(folder, ignore_errors=True)
    _TEMPLATE_DIR.clear()
    _SQLITE_TEMPLATES.clear()
