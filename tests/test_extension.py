"""The extension's registration, its tables on the host's metadata, and tokens at rest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_zoho_sync.adapter import SQLAlchemyContactAdapter
from flask_zoho_sync.errors import ConfigurationError, EncryptionKeyError
from flask_zoho_sync.extension import ZohoSync, get_state
from flask_zoho_sync.models import Connection
from flask_zoho_sync.zoho.auth import TokenSet
from tests.hostapp import TEST_ENCRYPTION_KEY, make_host_app

EXTENSION_TABLES = {
    "zoho_sync_connection",
    "zoho_sync_settings",
    "zoho_sync_field_map",
    "zoho_sync_link",
    "zoho_sync_outbox",
    "zoho_sync_run",
    "zoho_sync_history",
    "zoho_sync_tombstone",
    "zoho_sync_api_usage",
}


def sample_tokens(refresh: str = "1000.refresh-secret-value") -> TokenSet:
    return TokenSet(
        refresh_token=refresh,
        access_token="1000.access-secret-value",
        expires_at=1_900_000_000.0,
        api_domain="https://www.zohoapis.eu",
        accounts_server="https://accounts.zoho.eu",
        scope="ZohoCRM.modules.leads.ALL",
    )


def test_state_lives_in_app_extensions(host) -> None:
    state = host.app.extensions["zoho_sync"]
    with host.app.app_context():
        assert get_state() is state
    assert state.config.client_id == "sandbox-client-id"


def test_registering_twice_is_refused(host) -> None:
    with pytest.raises(RuntimeError, match="already registered"):
        ZohoSync(host.app, db=host.db)


def test_init_app_without_db_says_how_to_pass_it() -> None:
    app = Flask("no-db")
    with pytest.raises(ConfigurationError, match=r"ZohoSync\(app, db=db\)"):
        ZohoSync(app)


def test_init_app_without_contacts_says_how_to_name_them() -> None:
    app = Flask("no-contacts")
    app.config.update(
        ZOHO_SYNC_CLIENT_ID="cid",
        ZOHO_SYNC_CLIENT_SECRET="secret",
        ZOHO_SYNC_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
    )
    with pytest.raises(ConfigurationError, match="contact_model=Contact"):
        ZohoSync(app, db=SQLAlchemy())


def test_missing_settings_stop_the_app_at_start_up() -> None:
    app = Flask("unconfigured")
    db = SQLAlchemy()
    with pytest.raises(ConfigurationError, match="ZOHO_SYNC_CLIENT_ID"):
        ZohoSync(app, db=db)


def test_a_malformed_encryption_key_is_reported_at_start_up(tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        make_host_app(f"sqlite:///{tmp_path / 'x.db'}", ZOHO_SYNC_ENCRYPTION_KEYS="not-a-key")


def test_each_app_links_contacts_on_its_own_base_url(tmp_path) -> None:
    """Syncs run in the worker, outside any request, and send Zoho a link to each contact:
    init_app binds the adapter to the app's ZOHO_SYNC_BASE_URL, asked for at the time, so
    one adapter shared by two apps (an app factory) links to each app's own address."""

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    class Person(db.Model):  # type: ignore[name-defined]
        __tablename__ = "person"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str | None] = mapped_column(sa.String(120))

    extension = ZohoSync(db=db, adapter=SQLAlchemyContactAdapter(Person, contact_url="people.show"))
    base_urls = {"first": "https://one.example.com", "second": "https://two.example"}
    apps = []
    for name, base_url in base_urls.items():
        app = Flask(name)
        app.config.update(
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / name}.db",
            ZOHO_SYNC_CLIENT_ID="cid",
            ZOHO_SYNC_CLIENT_SECRET="secret",
            ZOHO_SYNC_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
            ZOHO_SYNC_BASE_URL=base_url,
        )
        app.add_url_rule("/people/<int:contact_id>", "people.show", lambda contact_id: "")
        db.init_app(app)
        extension.init_app(app)
        apps.append(app)
    for app in apps:
        with app.app_context():
            link = get_state().adapter.contact_url(Person(id=3))
        assert link == f"{base_urls[app.name]}/people/3"


def test_tables_join_the_host_metadata_and_create_all_makes_them(host) -> None:
    assert set(host.db.metadata.tables) >= EXTENSION_TABLES
    with host.app.app_context():
        present = set(sa.inspect(host.db.engine).get_table_names())
    assert present >= EXTENSION_TABLES
    assert {"contact", "contact_group"} <= present


def test_tokens_are_unreadable_in_the_database_without_the_key(host) -> None:
    with host.app.app_context():
        state = get_state()
        state.token_store().save(sample_tokens())
        raw = host.db.session.execute(
            sa.text(
                "SELECT refresh_token_encrypted, access_token_encrypted FROM zoho_sync_connection"
            )
        ).one()
        dump = b"".join(bytes(column) for column in raw)
        assert b"refresh-secret-value" not in dump
        assert b"access-secret-value" not in dump
        loaded = state.token_store().load()
    assert loaded == sample_tokens()


def test_saving_again_updates_the_single_connection_row(host) -> None:
    with host.app.app_context():
        store = get_state().token_store()
        store.save(sample_tokens("1000.first"))
        store.save(sample_tokens("1000.second"))
        assert host.db.session.scalar(sa.select(sa.func.count()).select_from(Connection)) == 1
        assert store.load().refresh_token == "1000.second"


def test_tokens_written_with_another_key_give_a_clear_error(host) -> None:
    with host.app.app_context():
        get_state().token_store().save(sample_tokens())
    uri = host.app.config["SQLALCHEMY_DATABASE_URI"]
    with (
        reopened(uri, Fernet.generate_key().decode(), host.Contact) as other,
        other.app_context(),
        pytest.raises(EncryptionKeyError, match="ZOHO_SYNC_ENCRYPTION_KEYS"),
    ):
        get_state().token_store().load()


def test_rotate_keys_lets_the_old_key_be_dropped(host) -> None:
    with host.app.app_context():
        get_state().token_store().save(sample_tokens())
    new_key = Fernet.generate_key().decode()
    uri = host.app.config["SQLALCHEMY_DATABASE_URI"]
    with reopened(uri, f"{new_key},{TEST_ENCRYPTION_KEY}", host.Contact) as rotating:
        result = rotating.test_cli_runner().invoke(args=["zoho-sync", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 connection" in result.output
    with reopened(uri, new_key, host.Contact) as only_new, only_new.app_context():
        assert get_state().token_store().load() == sample_tokens()


@contextmanager
def reopened(uri: str, keys: str, contact_model: type) -> Iterator[Flask]:
    """Another app instance on the same database, without touching its tables."""
    app = Flask("reopened")
    db = SQLAlchemy()
    app.config.update(
        SQLALCHEMY_DATABASE_URI=uri,
        ZOHO_SYNC_CLIENT_ID="cid",
        ZOHO_SYNC_CLIENT_SECRET="secret",
        ZOHO_SYNC_ENCRYPTION_KEYS=keys,
    )
    db.init_app(app)
    ZohoSync(app, db=db, contact_model=contact_model)
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_status_says_not_connected_on_a_fresh_install(host) -> None:
    result = host.app.test_cli_runner().invoke(args=["zoho-sync", "status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["connected"] is False
    assert status["counts"] == {"linked": 0, "pending": 0, "errors": 0}
    human = host.app.test_cli_runner().invoke(args=["zoho-sync", "status"])
    assert "Not connected to Zoho CRM." in human.output
