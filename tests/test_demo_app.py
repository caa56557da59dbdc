"""The demo app: login, contact pages, CSRF, and its admin check for the extension."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from demo_app import create_app
from demo_app.models import Contact, db
from demo_app.seed import ADMIN_EMAIL, ADMIN_PASSWORD
from flask_zoho_sync.extension import get_state
from tests.hostapp import TEST_ENCRYPTION_KEY


@pytest.fixture
def demo(tmp_path, monkeypatch) -> Iterator[Flask]:
    for key in ("DATABASE_URL", "ZOHO_SYNC_CLIENT_ID", "ZOHO_SYNC_ENCRYPTION_KEYS"):
        monkeypatch.delenv(key, raising=False)
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo.sqlite3'}"},
        instance_path=str(tmp_path / "instance"),
    )
    result = app.test_cli_runner().invoke(args=["demo-init", "--contacts", "5"])
    assert result.exit_code == 0, result.output
    assert ADMIN_EMAIL in result.output
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF token"
    return match.group(1)


def logged_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    return client


def test_pages_need_a_login(demo: Flask) -> None:
    response = demo.test_client().get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_a_wrong_password_is_refused_with_a_message(demo: Flask) -> None:
    client = demo.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    page = client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": "nope", "csrf_token": token}
    ).get_data(as_text=True)
    assert "do not match an account" in page


def test_seeded_contacts_are_listed(demo: Flask) -> None:
    page = logged_in(demo).get("/").get_data(as_text=True)
    assert page.count("/contacts/") >= 5


def test_add_edit_and_delete_a_contact(demo: Flask) -> None:
    client = logged_in(demo)
    token = csrf_from(client.get("/contacts/new").get_data(as_text=True))
    response = client.post(
        "/contacts/new",
        data={
            "csrf_token": token,
            "first_name": "Zoë",
            "last_name": "Ng",
            "email": "zoe@example.org",
            "birthday": "1990-04-30",
            "membership_level": "Gold",
            "subscribed": "on",
        },
    )
    assert response.status_code == 302
    contact_url = response.headers["Location"]
    assert "Zoë Ng" in client.get(contact_url).get_data(as_text=True)

    contact_id = int(contact_url.rstrip("/").rsplit("/", 1)[1])
    client.post(
        f"/contacts/{contact_id}/edit",
        data={"csrf_token": token, "last_name": "Ng-Smith", "email": "zoe@example.org"},
    )
    with demo.app_context():
        contact = db.session.get(Contact, contact_id)
        assert contact.last_name == "Ng-Smith"
        assert contact.subscribed is False  # unticked box means opted out
    client.post(f"/contacts/{contact_id}/delete", data={"csrf_token": token})
    with demo.app_context():
        assert db.session.get(Contact, contact_id) is None


def test_bad_form_values_are_explained_and_nothing_is_saved(demo: Flask) -> None:
    client = logged_in(demo)
    token = csrf_from(client.get("/contacts/new").get_data(as_text=True))
    page = client.post(
        "/contacts/new",
        data={"csrf_token": token, "email": "not-an-email", "birthday": "30/04/1990"},
    ).get_data(as_text=True)
    assert "Email must look like" in page
    assert "Birthday must be a date" in page
    with demo.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Contact)) == 5


def test_a_post_without_the_csrf_token_is_refused(demo: Flask) -> None:
    client = logged_in(demo)
    response = client.post("/contacts/new", data={"last_name": "Forged"})
    assert response.status_code == 400
    with demo.app_context():
        assert db.session.scalar(db.select(Contact).where(Contact.last_name == "Forged")) is None


def test_the_extension_is_registered_with_the_demos_admin_check(demo: Flask) -> None:
    with demo.test_request_context():
        state = get_state(demo)
        assert state.admin_check is not None
        assert state.admin_check() is False  # nobody logged in
    assert state.config.accounts_url.startswith("http://127.0.0.1")


def test_with_a_zoho_client_of_its_own_the_demo_targets_real_zoho(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ZOHO_SYNC_CLIENT_ID", "1000.REAL")
    monkeypatch.setenv("ZOHO_SYNC_CLIENT_SECRET", "real-secret")
    monkeypatch.setenv("ZOHO_SYNC_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'real.sqlite3'}"},
        instance_path=str(tmp_path / "instance"),
    )
    config = get_state(app).config
    assert config.client_id == "1000.REAL"
    assert config.accounts_url == "https://accounts.zoho.com"
    assert config.extra_accounts_servers == ()


def login_to(app: Flask, raw_next: str) -> str:
    """Log in through ``/login?next=<raw_next>`` (sent as is) and return the Location."""
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        f"/login?next={raw_next}",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    return response.headers["Location"]


# Each of these reaches a browser as, or decodes to, a URL on another host (issue 25, item 5).
OFF_SITE_NEXT = [
    "/%09/other-host/path",  # the reported one: a tab Werkzeug strips to //other-host
    "/%0A/other-host",
    "/%0D/other-host",
    "/%0D%0A/other-host",
    "%09//other-host",
    "/\\other-host",
    "/%5Cother-host",
    "/%5C%5Cother-host",
    "%5C%5Cother-host",
    "//other-host",
    "/%2F/other-host",
    "%2F%2Fother-host",
    "/%252F/other-host",  # encoded twice
    "/%25252F/other-host",
    "https://other-host/",
    "https:%2F%2Fother-host",
    "javascript:alert(1)",
    "/%00/other-host",
    "other-host/path",
    "",
]


@pytest.mark.parametrize("raw_next", OFF_SITE_NEXT)
def test_login_never_redirects_off_the_site(demo: Flask, raw_next: str) -> None:
    location = login_to(demo, raw_next)
    assert location == "/", f"next={raw_next!r} sent the user to {location!r}"


@pytest.mark.parametrize(
    "raw_next", ["/contacts/3", "/contacts/3?tab=history", "/admin/zoho/history?page=2", "/"]
)
def test_login_returns_to_the_page_on_this_site_that_asked_for_it(
    demo: Flask, raw_next: str
) -> None:
    assert login_to(demo, raw_next) == raw_next


def test_a_page_that_needed_a_login_is_shown_after_it(demo: Flask) -> None:
    client = demo.test_client()
    asked = client.get("/contacts/1")
    assert asked.status_code == 302
    login_page = asked.headers["Location"]
    token = csrf_from(client.get(login_page).get_data(as_text=True))
    response = client.post(
        login_page, data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token}
    )
    assert response.headers["Location"].startswith("/contacts/1")


@pytest.mark.parametrize(
    "contact_id", ["9223372036854775807", "9223372036854775808", "0", "9" * 5000]
)
def test_a_contact_id_no_contact_can_have_is_not_found(demo: Flask, contact_id: str) -> None:
    client = logged_in(demo)
    assert client.get(f"/contacts/{contact_id}").status_code == 404
    assert client.get(f"/contacts/{contact_id}/edit").status_code == 404


def test_group_ids_no_group_can_have_are_ignored_in_the_form(demo: Flask) -> None:
    client = logged_in(demo)
    token = csrf_from(client.get("/contacts/new").get_data(as_text=True))
    response = client.post(
        "/contacts/new",
        data={
            "csrf_token": token,
            "email": "odd.groups@example.org",
            "last_name": "Groups",
            "groups": ["9223372036854775808", "9" * 5000, "\u00b2", "-1"],
        },
    )
    assert response.status_code == 302
    with demo.app_context():
        contact = db.session.scalar(
            db.select(Contact).where(Contact.email == "odd.groups@example.org")
        )
        assert contact is not None and contact.groups == []
