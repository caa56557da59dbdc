"""An install made before tenants, upgraded by ``flask_zoho_sync.migrations`` from a host's
Alembic revision, syncs on as the single tenant 'default' and holds what the models declare.

Each test builds the old schema (the models' tables without ``tenant_id`` and with the
unique constraints that did not name a tenant), fills it the way an old install would, and
runs the steps through Alembic's ``Operations`` as a revision would, on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.operations import Operations

from flask_zoho_sync import migrations, schema
from flask_zoho_sync.ledger import Ledger
from flask_zoho_sync.migrations import (
    SINGLE_TENANT_UNIQUES,
    TENANT_COLUMN,
    TENANT_TABLES,
    TenantMigrationError,
    downgrade_from_tenants,
    upgrade_to_tenants,
)
from flask_zoho_sync.models import NAMING_CONVENTION, Base, SyncSettings
from flask_zoho_sync.tenancy import tenant_context
from tests.hostapp import HostApp, make_host_app

STAMP = datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)
DAY = date(2026, 11, 1)

#: What an old install holds: one row per table whose key the migration changes, and its
#: settings. Columns left out take the models' Python defaults.
OLD_ROWS: dict[str, dict[str, Any]] = {
    "zoho_sync_settings": {"module": "Leads", "time_zone": "Europe/Paris"},
    "zoho_sync_field_map": {"kind": "field", "host_key": "email", "zoho_field": "Email"},
    "zoho_sync_link": {"module": "Leads", "contact_id": "1", "zoho_id": "z1", "synced_at": STAMP},
    "zoho_sync_lead_conversion": {
        "module": "Leads",
        "contact_id": "1",
        "lead_id": "lead1",
        "outcome": "follow",
    },
    "zoho_sync_api_usage": {"day": DAY, "endpoint": "GET /crm/v8/Leads", "calls": 3},
}

Step = Callable[[Operations], None]


# -- the old schema ---------------------------------------------------------------------------


def old_metadata(*, named: bool = True) -> sa.MetaData:
    """The extension's tables as an install made before tenants created them.

    ``named=False``: constraints without the naming convention, as on a host whose tables
    were made by other means; PostgreSQL then names them ``<table>_<columns>_key`` and
    SQLite keeps them unnamed.
    """
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION if named else {})
    for table in Base.metadata.sorted_tables:
        if table.name not in TENANT_TABLES:  # a table added since: made new, as create_all does
            table.to_metadata(metadata)
            continue
        columns = [column._copy() for column in table.columns if column.name != TENANT_COLUMN]
        uniques = [
            sa.UniqueConstraint(*columns_of)
            for swapped, columns_of in SINGLE_TENANT_UNIQUES
            if swapped == table.name
        ]
        # Column._copy leaves foreign keys behind (zoho_sync_history.run_id).
        foreign_keys = [
            sa.ForeignKeyConstraint(
                [column.name for column in constraint.columns],
                [element.target_fullname for element in constraint.elements],
            )
            for constraint in table.foreign_key_constraints
        ]
        indexes = [
            sa.Index(index.name, *[column.name for column in index.columns])
            for index in table.indexes
            if TENANT_COLUMN not in index.columns
        ]
        sa.Table(table.name, metadata, *columns, *uniques, *foreign_keys, *indexes)
    return metadata


def empty_database(engine: sa.Engine) -> None:
    """Nothing left of an earlier test's tables (SQLite: each test has a new file)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(sa.text("DROP SCHEMA public CASCADE"))
            connection.execute(sa.text("CREATE SCHEMA public"))


def build_old_install(host: HostApp, *, named: bool = True) -> sa.MetaData:
    """The host's tables, the extension's old ones, and the rows an old install holds."""
    engine = host.db.engine
    empty_database(engine)
    host_tables = [t for t in host.db.metadata.sorted_tables if not t.name.startswith("zoho_")]
    host.db.metadata.create_all(engine, tables=host_tables)
    old = old_metadata(named=named)
    old.create_all(engine)
    with engine.begin() as connection:
        for table, row in OLD_ROWS.items():
            connection.execute(old.tables[table].insert().values(**row))
    schema.forget_checked(engine)
    return old


def run(engine: sa.Engine, step: Step) -> None:
    """As Alembic runs a revision's upgrade(): one transaction, ``op`` bound to it."""
    with engine.begin() as connection:
        step(Operations(MigrationContext.configure(connection)))


def differences(engine: sa.Engine, metadata: sa.MetaData) -> list[Any]:
    """What ``flask db migrate`` would write for the extension's tables."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "compare_server_default": True},
        )
        diffs = compare_metadata(context, metadata)
    return [diff for diff in diffs if "zoho_sync_" in repr(diff)]


def shape(engine: sa.Engine) -> dict[str, Any]:
    """What the database says of the extension's tables: columns, indexes, constraints."""
    inspector = sa.inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
        )
        for table in TENANT_TABLES
    }


@pytest.fixture
def host(database_url: str) -> Iterator[HostApp]:
    """A host app on a database that has no tables yet (each test builds its own)."""
    built = make_host_app(database_url, fresh_tables=False)
    with built.app.app_context():
        yield built
        built.db.session.remove()
        schema.forget_checked(built.db.engine)
        built.db.engine.dispose()


# -- the upgrade ------------------------------------------------------------------------------


def test_an_old_install_upgraded_is_complete_and_its_rows_are_the_default_tenants(
    host: HostApp,
) -> None:
    build_old_install(host)
    engine = host.db.engine
    before = schema.missing_tables(engine, None)
    assert f"zoho_sync_link.{TENANT_COLUMN}{schema.COLUMN_MARK}" in before
    assert len(before) == len(TENANT_TABLES)

    run(engine, upgrade_to_tenants)

    assert schema.missing_tables(engine, None) == []
    with engine.connect() as connection:
        for table in OLD_ROWS:
            tenants = connection.execute(sa.text(f"SELECT tenant_id FROM {table}")).scalars()
            assert list(tenants) == ["default"], table
        link = connection.execute(sa.text("SELECT module, contact_id, zoho_id FROM zoho_sync_link"))
        assert link.one() == ("Leads", "1", "z1")
    # A row the host's own SQL adds without naming a tenant lands in 'default' too.
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO zoho_sync_tombstone (module, zoho_id, deleted_on, deleted_at)"
                " VALUES ('Leads', 'z9', 'host', :at)"
            ),
            {"at": STAMP.replace(tzinfo=None)},
        )
        buried = connection.execute(sa.text("SELECT tenant_id FROM zoho_sync_tombstone"))
        assert buried.scalar() == "default"


def test_autogenerate_finds_nothing_left_to_do_after_the_upgrade(host: HostApp) -> None:
    build_old_install(host)
    engine = host.db.engine
    assert differences(engine, Base.metadata), "the old schema must differ from the models"

    run(engine, upgrade_to_tenants)

    assert differences(engine, Base.metadata) == []


def test_a_key_is_unique_per_tenant_after_the_upgrade(host: HostApp) -> None:
    build_old_install(host)
    engine = host.db.engine
    run(engine, upgrade_to_tenants)
    tables = Base.metadata.tables
    # The old rows' keys again, under a second tenant: refused before the upgrade.
    for table, row in OLD_ROWS.items():
        with engine.begin() as connection:
            connection.execute(tables[table].insert().values(**row, tenant_id="acme"))
    # And once more under that tenant, changing whatever is not part of the key.
    clashes = [
        ("zoho_sync_field_map", {**OLD_ROWS["zoho_sync_field_map"], "zoho_field": "Other"}),
        ("zoho_sync_link", {**OLD_ROWS["zoho_sync_link"], "contact_id": "2"}),
        ("zoho_sync_link", {**OLD_ROWS["zoho_sync_link"], "zoho_id": "z2"}),
        ("zoho_sync_lead_conversion", {**OLD_ROWS["zoho_sync_lead_conversion"], "contact_id": "2"}),
        ("zoho_sync_api_usage", {**OLD_ROWS["zoho_sync_api_usage"], "calls": 9}),
    ]
    assert len(clashes) == len(SINGLE_TENANT_UNIQUES)
    for table, row in clashes:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(tables[table].insert().values(**row, tenant_id="acme"))
        # What the clash changed is free under a tenant of its own.
        with engine.begin() as connection:
            connection.execute(tables[table].insert().values(**row, tenant_id="third"))


def test_running_the_upgrade_again_changes_nothing(host: HostApp) -> None:
    build_old_install(host)
    engine = host.db.engine
    run(engine, upgrade_to_tenants)
    upgraded = shape(engine)

    run(engine, upgrade_to_tenants)

    assert shape(engine) == upgraded
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM zoho_sync_link")).scalar() == 1


def test_tables_already_in_the_new_shape_are_left_as_they_are(host: HostApp) -> None:
    """A host that ran create_all after upgrading the package (new tables), or part of an
    autogenerated revision (the column without the constraint swap), and a host whose
    constraints never had our names."""
    old = build_old_install(host, named=False)
    engine = host.db.engine
    made_new = ["zoho_sync_scope", "zoho_sync_scope_exit", "zoho_sync_api_usage"]
    with engine.begin() as connection:
        for name in made_new:
            old.tables[name].drop(connection)
        Base.metadata.create_all(connection, tables=[Base.metadata.tables[n] for n in made_new])
        connection.execute(
            sa.text(
                "ALTER TABLE zoho_sync_link ADD COLUMN tenant_id VARCHAR(64)"
                " DEFAULT 'default' NOT NULL"
            )
        )
    new_tables = shape(engine)

    run(engine, upgrade_to_tenants)

    upgraded = shape(engine)
    assert {name: upgraded[name] for name in made_new} == {n: new_tables[n] for n in made_new}
    assert differences(engine, Base.metadata) == []
    assert schema.missing_tables(engine, None) == []


def test_the_extension_reads_the_old_install_as_the_default_tenant(host: HostApp) -> None:
    build_old_install(host)
    engine = host.db.engine
    cli = host.app.test_cli_runner()
    refused = cli.invoke(args=["zoho-sync", "settings"])
    assert refused.exit_code == 2 and "zoho_sync_link.tenant_id" in refused.output

    run(engine, upgrade_to_tenants)

    shown = cli.invoke(args=["zoho-sync", "settings"])
    assert shown.exit_code == 0, shown.output
    assert "Module: Leads; time zone: Europe/Paris" in shown.output
    assert "email <-> Email" in shown.output
    links = Ledger(host.db.session, SyncSettings(module="Leads")).links_by_contact(["1"])
    assert {contact: link.zoho_id for contact, link in links.items()} == {"1": "z1"}
    host.db.session.remove()
    # A second tenant starts empty and may link the same Zoho record.
    other = cli.invoke(args=["zoho-sync", "--tenant", "acme", "settings"])
    assert other.exit_code == 0, other.output
    assert "Module: not chosen" in other.output and "Email" not in other.output
    with tenant_context("acme"):
        ledger = Ledger(host.db.session, SyncSettings(module="Leads"))
        assert ledger.links_by_contact(["1"]) == {}
        ledger.save_link("1", "z1", {}, STAMP)
        ledger.commit()
    host.db.session.remove()
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT tenant_id, zoho_id FROM zoho_sync_link ORDER BY tenant_id")
        )
        assert rows.all() == [("acme", "z1"), ("default", "z1")]


#: A host's migrations folder as ``flask db init`` leaves it, reduced to what runs online,
#: and the revision the README tells a host to write.
HOST_ENV = """
from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
"""

HOST_REVISION = """
from alembic import op

from flask_zoho_sync.migrations import downgrade_from_tenants, upgrade_to_tenants

revision = "a1b2c3d4e5f6"
down_revision = None


def upgrade():
    upgrade_to_tenants(op)


def downgrade():
    downgrade_from_tenants(op)
"""


def test_a_hosts_own_revision_upgrades_and_downgrades_through_alembic(
    host: HostApp, tmp_path: Path
) -> None:
    """The way a host runs it: ``alembic``'s ``op`` proxy in a revision file, not an
    ``Operations`` built by hand."""
    old = build_old_install(host)
    engine = host.db.engine
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "migrations" / "env.py").write_text(HOST_ENV)
    (tmp_path / "migrations" / "script.py.mako").write_text("")
    (tmp_path / "migrations" / "versions" / "a1b2c3d4e5f6_tenants.py").write_text(HOST_REVISION)

    def alembic(*args: str) -> None:
        config = Config()
        config.set_main_option("script_location", str(tmp_path / "migrations"))
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            getattr(command, args[0])(config, *args[1:])
            connection.commit()

    alembic("upgrade", "head")
    assert differences(engine, Base.metadata) == []
    alembic("downgrade", "base")
    assert differences(engine, old) == []


# -- the downgrade and what is refused --------------------------------------------------------


def test_the_downgrade_gives_back_the_old_schema_and_rows(host: HostApp) -> None:
    old = build_old_install(host)
    engine = host.db.engine
    run(engine, upgrade_to_tenants)

    run(engine, downgrade_from_tenants)

    assert differences(engine, old) == []
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT zoho_id FROM zoho_sync_link")).scalars().all()
    run(engine, downgrade_from_tenants)  # nothing left to take away
    run(engine, upgrade_to_tenants)
    assert differences(engine, Base.metadata) == []


def test_the_downgrade_refuses_while_another_tenant_has_rows(host: HostApp) -> None:
    build_old_install(host)
    engine = host.db.engine
    run(engine, upgrade_to_tenants)
    link = Base.metadata.tables["zoho_sync_link"]
    with engine.begin() as connection:
        connection.execute(link.insert().values(**OLD_ROWS["zoho_sync_link"], tenant_id="acme"))

    with pytest.raises(TenantMigrationError, match="zoho_sync_link"):
        run(engine, downgrade_from_tenants)

    assert differences(engine, Base.metadata) == []


def test_offline_sql_is_refused_with_a_reason() -> None:
    """``alembic upgrade --sql``: the steps read the database, which a script cannot."""
    context = MigrationContext.configure(dialect_name="postgresql", opts={"as_sql": True})
    with pytest.raises(TenantMigrationError, match="--sql"):
        upgrade_to_tenants(Operations(context))


def test_the_frozen_table_list_names_the_models_tables() -> None:
    """The migration names its tables rather than reading the models (a revision must not
    change meaning); a typo there would leave a table without its tenant column."""
    scoped = {t.name for t in Base.metadata.sorted_tables if TENANT_COLUMN in t.columns}
    assert set(TENANT_TABLES) <= scoped
    for table, columns in SINGLE_TENANT_UNIQUES:
        constraint = migrations.unique_constraint_name(table, (TENANT_COLUMN, *columns))
        assert constraint in {c.name for c in Base.metadata.tables[table].constraints}
