"""A multi-tenant host: contacts carry the site they belong to, and every request names its
site in a header (as a platform would from its domain or the signed-in account)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask.testing import FlaskClient
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.test import TestResponse

from flask_zoho_sync.adapter import SQLAlchemyContactAdapter
from flask_zoho_sync.connection import store_account_details
from flask_zoho_sync.extension import ZohoSync, ZohoSyncState, get_state
from flask_zoho_sync.preferences import add_default_mappings, get_settings
from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.tenancy import tenant_context
from flask_zoho_sync.zoho.auth import TokenSet
from tests.conftest import TEST_REDIS_URL
from tests.hostapp import TEST_ENCRYPTION_KEY
from tests.tables import fresh_tables, release_tables

PREFIX = "/admin/zoho"
SITE_HEADER = "X-Site"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class TenantHost:
    app: Flask
    db: SQLAlchemy
    Contact: Any
    Group: Any
    client: FlaskClient

    @property
    def state(self) -> ZohoSyncState:
        return get_state(self.app)

    def add_contact(self, site: str, **values: Any) -> int:
        with self.app.app_context():
            contact = self.Contact(site=site, **values)
            self.db.session.add(contact)
            self.db.session.commit()
            return int(contact.id)

    def get(self, site: str | None, path: str) -> TestResponse:
        headers = {SITE_HEADER: site} if site else {}
        return self.client.get(f"{PREFIX}{path}", headers=headers)

    def post(self, site: str, path: str, data: dict[str, Any] | None = None) -> TestResponse:
        page = self.get(site, "/settings").get_data(as_text=True)
        match = _TOKEN.search(page)
        assert match, "the settings page carries a CSRF token"
        form = {"csrf_token": match.group(1), **(data or {})}
        return self.client.post(f"{PREFIX}{path}", data=form, headers={SITE_HEADER: site})

    def as_tenant(self, site: str) -> Any:
        """An app context running as ``site`` (what a job or ``--tenant`` does)."""
        return _TenantAppContext(self.app, site)


class _TenantAppContext:
    def __init__(self, app: Flask, site: str) -> None:
        self.app_context = app.app_context()
        self.tenant = tenant_context(site)

    def __enter__(self) -> None:
        self.app_context.__enter__()
        self.tenant.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.tenant.__exit__(*exc)
        self.app_context.__exit__(*exc)


def make_tenant_host(database_url: str, **config: Any) -> TenantHost:
    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)
    memberships = sa.Table(
        "site_contact_groups",
        db.metadata,
        sa.Column(
            "contact_id", sa.ForeignKey("site_contact.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("group_id", sa.ForeignKey("site_group.id", ondelete="CASCADE"), primary_key=True),
    )

    class Group(db.Model):  # type: ignore[name-defined]
        __tablename__ = "site_group"
        __table_args__ = (sa.UniqueConstraint("site", "name"),)
        id: Mapped[int] = mapped_column(primary_key=True)
        site: Mapped[str] = mapped_column(sa.String(32))
        name: Mapped[str] = mapped_column(sa.String(80))

    class Contact(db.Model):  # type: ignore[name-defined]
        __tablename__ = "site_contact"
        id: Mapped[int] = mapped_column(primary_key=True)
        site: Mapped[str] = mapped_column(sa.String(32), index=True)
        first_name: Mapped[str | None] = mapped_column(sa.String(40))
        last_name: Mapped[str | None] = mapped_column(sa.String(80))
        email: Mapped[str | None] = mapped_column(sa.String(120))
        company: Mapped[str | None] = mapped_column(sa.String(120))
        subscribed: Mapped[bool] = mapped_column(sa.Boolean, default=True)
        groups: Mapped[list[Group]] = relationship(secondary=memberships)

    app = Flask("tenanthost")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        SECRET_KEY="tenant-tests-secret",
        ZOHO_SYNC_CLIENT_ID="sandbox-client-id",
        ZOHO_SYNC_CLIENT_SECRET="sandbox-client-secret",
        ZOHO_SYNC_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
        TESTING=True,
    )
    app.config.update(config)
    db.init_app(app)
    ZohoSync(
        app,
        db=db,
        adapter=SQLAlchemyContactAdapter(Contact, modified=None, tenant="site"),
        admin_check=lambda: True,
        tenant=lambda: request.headers.get(SITE_HEADER),
    )
    with app.app_context():
        fresh_tables(db)
    return TenantHost(app=app, db=db, Contact=Contact, Group=Group, client=app.test_client())


def sandbox_settings(sandbox: SandboxHandle) -> dict[str, Any]:
    return {
        "ZOHO_SYNC_ACCOUNTS_URL": sandbox.accounts_server,
        "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS": sandbox.accounts_server,
        "ZOHO_SYNC_CLIENT_ID": sandbox.client_id,
        "ZOHO_SYNC_CLIENT_SECRET": sandbox.client_secret,
    }


@pytest.fixture
def build_tenant_host(database_url: str, redis_client: Any) -> Iterator[Callable[..., TenantHost]]:
    """Build a tenant host with ``config`` of its own; its tables are released afterwards."""
    built: list[TenantHost] = []

    def build(**config: Any) -> TenantHost:
        built.append(make_tenant_host(database_url, **config))
        return built[-1]

    yield build
    for host in built:
        with host.app.app_context():
            release_tables(host.db)


@pytest.fixture
def tenant_host(build_tenant_host: Callable[..., TenantHost]) -> TenantHost:
    return build_tenant_host()


@pytest.fixture
def sandbox_tenant_host(
    build_tenant_host: Callable[..., TenantHost], zoho_sandbox: SandboxHandle
) -> TenantHost:
    return build_tenant_host(**sandbox_settings(zoho_sandbox))


def store_connection(host: TenantHost, site: str, org_name: str) -> None:
    """A connection row as if ``site``'s admin had connected (no Zoho is asked)."""
    with host.as_tenant(site):
        host.state.token_store().save(
            TokenSet(
                refresh_token=f"1000.{site}-refresh",
                access_token=f"1000.{site}-access",
                expires_at=9_999_999_999.0,
                api_domain="https://www.zohoapis.eu",
                accounts_server="https://accounts.zoho.eu",
            )
        )
        session = host.db.session
        store_account_details(
            session,
            location="eu",
            org={"id": f"org-{site}", "company_name": org_name, "time_zone": "Europe/Berlin"},
            user={"id": "7", "email": f"owner@{site}.test", "full_name": f"{site} owner"},
        )
        get_settings(session).module = "Leads"
        add_default_mappings(session, host.state.adapter, "Leads")
        session.commit()
