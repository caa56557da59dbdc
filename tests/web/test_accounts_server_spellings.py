"""Spellings of an allowed accounts server at the OAuth callback and at ``connect
--accounts-server`` (issue 25, item 8): the same server spelled differently is stored as
its one normalised origin; a spelling that could hide another host is refused, clearly,
with nothing stored. The local sandbox plays Zoho and is the allowed extra server."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import Connection
from flask_zoho_sync.web.connect import MAX_CALLBACK_VALUE
from tests.web.conftest import PREFIX, Admin, consent_in_sandbox, query_of


def stored(admin: Admin) -> list[tuple[str, str | None]]:
    with admin.host.app.app_context():
        session = admin.state.db.session
        rows = session.execute(sa.select(Connection.accounts_server, Connection.location)).all()
        session.remove()
    return [tuple(row) for row in rows]


def callback_with(admin: Admin, **changes: str) -> Any:
    """Consent in the sandbox, then come back with some of Zoho's parameters replaced."""
    started = admin.post("/connect")
    back = consent_in_sandbox(started.headers["Location"])
    query = {**query_of(back), **changes}
    return admin.client.get(f"{urlsplit(back).path}?{urlencode(query)}")


def spelled(origin: str, template: str) -> str:
    host_port = origin.removeprefix("http://")
    return template.format(host_port=host_port, port=host_port.rsplit(":", 1)[1])


ACCEPTED = [
    "http://{host_port}/",
    " http://{host_port}",
    "http://{host_port}\t",
    "HTTP://{host_port}",
]
REFUSED = [
    ("http://{host_port}/../..", "has the path '/../..'"),
    ("http://127.0.0.1:0{port}", "without leading zeros"),
    ("http://user@{host_port}", "user name or password"),
    ("http://{host_port}?x=1", "query or fragment"),
    ("http://127.0.0.1\t:{port}", "control characters"),
]


@pytest.mark.parametrize("template", ACCEPTED)
def test_a_callback_spelling_the_allowed_server_differently_stores_its_origin(
    sandbox_admin: Admin, zoho_sandbox: Any, template: str
) -> None:
    origin = zoho_sandbox.accounts_server
    response = callback_with(sandbox_admin, **{"accounts-server": spelled(origin, template)})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert response.headers["Location"].endswith(f"{PREFIX}/settings")
    assert stored(sandbox_admin) == [(origin, "us")]


@pytest.mark.parametrize(("template", "reason"), REFUSED)
def test_a_callback_spelling_that_could_hide_another_host_is_refused(
    sandbox_admin: Admin, zoho_sandbox: Any, template: str, reason: str
) -> None:
    server = spelled(zoho_sandbox.accounts_server, template)
    response = callback_with(sandbox_admin, **{"accounts-server": server})
    assert response.status_code == 400
    text = html.unescape(response.get_data(as_text=True))
    assert reason in text and "Untrusted Zoho accounts server" in text
    assert stored(sandbox_admin) == []


def test_a_location_zoho_does_not_use_is_not_stored(
    sandbox_admin: Admin, zoho_sandbox: Any
) -> None:
    response = callback_with(sandbox_admin, location="<not-a-data-centre-at-all>")
    assert response.status_code == 302
    # The sandbox is no Zoho data centre, so there is no location to fall back on.
    assert stored(sandbox_admin) == [(zoho_sandbox.accounts_server, None)]


@pytest.mark.parametrize("name", ["code", "state", "location", "accounts-server"])
def test_a_callback_parameter_longer_than_zoho_sends_is_refused(
    sandbox_admin: Admin, name: str
) -> None:
    response = callback_with(sandbox_admin, **{name: "x" * (MAX_CALLBACK_VALUE + 1)})
    assert response.status_code == 400
    assert f"The '{name}' parameter is longer" in html.unescape(response.get_data(as_text=True))
    assert stored(sandbox_admin) == []


def connect_cli(admin: Admin, refresh_token: str, server: str) -> Any:
    return admin.host.app.test_cli_runner().invoke(
        args=["zoho-sync", "connect", "--refresh-token", refresh_token, "--accounts-server", server]
    )


def test_connect_on_the_command_line_stores_the_normalised_origin(
    sandbox_admin: Admin, zoho_sandbox: Any
) -> None:
    grant = zoho_sandbox.mint_refresh_token()
    origin = zoho_sandbox.accounts_server
    result = connect_cli(sandbox_admin, grant["refresh_token"], f" HTTP://{origin[7:]}/\t")
    assert result.exit_code == 0, result.output
    assert stored(sandbox_admin) == [(origin, None)]


@pytest.mark.parametrize(("template", "reason"), REFUSED)
def test_connect_on_the_command_line_refuses_a_suspicious_spelling(
    sandbox_admin: Admin, zoho_sandbox: Any, template: str, reason: str
) -> None:
    grant = zoho_sandbox.mint_refresh_token()
    server = spelled(zoho_sandbox.accounts_server, template)
    result = connect_cli(sandbox_admin, grant["refresh_token"], server)
    assert result.exit_code == 1
    assert result.output.startswith("Error: Refusing accounts server") and reason in result.output
    assert "Traceback" not in result.output
    assert stored(sandbox_admin) == []
