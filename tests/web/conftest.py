"""Fixtures for the admin pages: a host app with the pages mounted, a browser-like client
that knows its CSRF token, and ways to be connected (for real through the sandbox, or by
storing a connection row when the test is about rendering)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from flask_zoho_sync import jobs
from flask_zoho_sync.connection import store_account_details
from flask_zoho_sync.extension import ZohoSyncState, get_state
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.web import register_admin
from flask_zoho_sync.workers import SimpleSyncWorker
from flask_zoho_sync.zoho.auth import TokenSet
from tests.conftest import TEST_REDIS_URL
from tests.hostapp import HostApp, make_host_app
from tests.tables import release_tables

PREFIX = "/admin/zoho"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_PLAN_LINK = re.compile(r'hx-get="(/admin/zoho/sync/plan/[^"]+)"')


@dataclass
class Admin:
    """A host app with the admin pages, and a test client playing the admin's browser."""

    host: HostApp
    client: FlaskClient

    @property
    def state(self) -> ZohoSyncState:
        return get_state(self.host.app)

    def csrf_token(self) -> str:
        page = self.client.get(f"{PREFIX}/settings")
        match = _TOKEN.search(page.get_data(as_text=True))
        assert match, "the settings page carries a CSRF token"
        return match.group(1)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> TestResponse:
        """POST as the admin's browser would: with the page's CSRF token in the form."""
        form = {"csrf_token": self.csrf_token(), **(data or {})}
        return self.client.post(f"{PREFIX}{path}", data=form, **kwargs)

    def htmx_post(self, path: str, data: dict[str, Any] | None = None) -> TestResponse:
        """POST as htmx does: token in the X-CSRFToken header, HX-Request set."""
        headers = {"X-CSRFToken": self.csrf_token(), "HX-Request": "true"}
        return self.client.post(f"{PREFIX}{path}", data=data or {}, headers=headers)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(f"{PREFIX}{path}", **kwargs)

    def plan(self, data: dict[str, Any], *, htmx: bool = False) -> TestResponse:
        """Preview as the admin does: queue the plan, let a worker make it, and follow the
        page to it. A refusal before anything was queued is returned as it came."""
        queued = self.htmx_post("/sync/plan", data) if htmx else self.post("/sync/plan", data)
        link = _PLAN_LINK.search(queued.get_data(as_text=True))
        if link is None:
            return queued
        self.work_queue()
        return self.client.get(link.group(1), headers={"HX-Request": "true"} if htmx else {})

    def work_queue(self) -> None:
        """What a worker does: run every job queued (and every retry due) in this process."""
        with self.host.app.app_context():
            queue = jobs.queue_for(self.state)
            SimpleSyncWorker([queue], connection=self.state.redis()).work(
                burst=True, with_scheduler=True
            )

    def text(self, path: str) -> str:
        response = self.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)[:2000]
        return response.get_data(as_text=True)

    def settings(self) -> SimpleNamespace:
        """The stored settings, read in a fresh session (what the next request will see)."""
        with self.host.app.app_context():
            session = self.state.db.session
            row = get_settings(session)
            values = {column.key: getattr(row, column.key) for column in row.__table__.columns}
            session.rollback()
            return SimpleNamespace(**values)

    def update_settings(self, **values: Any) -> None:
        with self.host.app.app_context():
            session = self.state.db.session
            row = get_settings(session)
            for key, value in values.items():
                setattr(row, key, value)
            session.commit()

    def store_connection(self, *, org: dict[str, Any] | None = None, **tokens: Any) -> None:
        """A connection row as if an admin had connected (no Zoho is asked)."""
        with self.host.app.app_context():
            values = {
                "refresh_token": "1000.refresh-secret-value",
                "access_token": "1000.access-secret-value",
                "expires_at": 9_999_999_999.0,
                "api_domain": "https://www.zohoapis.eu",
                "accounts_server": "https://accounts.zoho.eu",
                **tokens,
            }
            self.state.token_store().save(TokenSet(**values))
            session = self.state.db.session
            store_account_details(
                session,
                location="eu",
                org={
                    "id": "20051",
                    "company_name": "Acme Ltd",
                    "time_zone": "Europe/Berlin",
                    **(org or {}),
                },
                user={"id": "7", "email": "owner@acme.test", "full_name": "Olive Owner"},
            )
            session.commit()


@pytest.fixture
def make_admin(database_url: str, redis_client: Any) -> Iterator[Callable[..., Admin]]:
    """Build a host app with the admin pages; ``admin_check`` defaults to "yes, an admin".

    Runs on SQLite and PostgreSQL through ``database_url``, like the suite's ``host``.
    """
    built: list[HostApp] = []

    def make(admin_check: Any = lambda: True, **config: Any) -> Admin:
        config.setdefault("SECRET_KEY", "web-tests-secret")
        host = make_host_app(database_url, ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL, **config)
        built.append(host)
        state = get_state(host.app)
        state.admin_check = admin_check
        register_admin(host.app, state)
        return Admin(host=host, client=host.app.test_client())

    yield make
    for host in built:
        with host.app.app_context():
            release_tables(host.db)


@pytest.fixture
def admin(make_admin: Callable[..., Admin]) -> Admin:
    return make_admin()


def sandbox_config(sandbox: Any) -> dict[str, Any]:
    return {
        "ZOHO_SYNC_ACCOUNTS_URL": sandbox.accounts_server,
        "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS": sandbox.accounts_server,
        "ZOHO_SYNC_CLIENT_ID": sandbox.client_id,
        "ZOHO_SYNC_CLIENT_SECRET": sandbox.client_secret,
    }


@pytest.fixture
def sandbox_admin(make_admin: Callable[..., Admin], zoho_sandbox: Any) -> Admin:
    """Admin pages of an app configured for the sandbox, not connected yet."""
    return make_admin(**sandbox_config(zoho_sandbox))


@pytest.fixture
def connected_admin(sandbox_admin: Admin, zoho_sandbox: Any) -> Admin:
    """Connected to the sandbox with a minted refresh token (the CLI's way, no browser)."""
    grant = zoho_sandbox.mint_refresh_token()
    with sandbox_admin.host.app.app_context():
        sandbox_admin.state.connect_with_refresh_token(
            grant["refresh_token"], grant["accounts_server"]
        )
    return sandbox_admin


class _FormReader(HTMLParser):
    """The inputs of the first form on a page (enough for the sandbox's consent page)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("name") and values.get("type") != "checkbox":
            self.fields[values["name"]] = values.get("value", "")


def consent_in_sandbox(authorize_url: str, decision: str = "authorise") -> str:
    """Play the admin on the sandbox's consent page; returns where Zoho sends them back."""
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text[:500]
    reader = _FormReader()
    reader.feed(page.text)
    parts = urlsplit(authorize_url)
    action = f"{parts.scheme}://{parts.netloc}{reader.action or parts.path}"
    answer = requests.post(
        action, data={**reader.fields, "decision": decision}, allow_redirects=False, timeout=10
    )
    assert answer.status_code in (302, 303), answer.text[:500]
    return answer.headers["Location"]


def local_path(url: str) -> str:
    """The path and query of an absolute URL, for the Flask test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))
