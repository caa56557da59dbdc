"""Connecting through Zoho's consent (the sandbox plays Zoho), and disconnecting."""

from __future__ import annotations

import sqlalchemy as sa

from flask_zoho_sync.models import Connection
from tests.web.conftest import (
    PREFIX,
    Admin,
    consent_in_sandbox,
    local_path,
    query_of,
    sandbox_config,
)


def _connection_count(admin: Admin) -> int:
    with admin.host.app.app_context():
        return int(
            admin.state.db.session.scalar(sa.select(sa.func.count()).select_from(Connection))
        )


def _start_connect(admin: Admin) -> str:
    response = admin.post("/connect")
    assert response.status_code == 302
    return response.headers["Location"]


def test_connect_sends_the_admin_to_zoho_with_state_scope_and_offline_consent(
    make_admin,
) -> None:
    admin = make_admin(ZOHO_SYNC_ACCOUNTS_URL="https://accounts.zoho.eu")
    url = _start_connect(admin)
    assert url.startswith("https://accounts.zoho.eu/oauth/v2/auth?")
    query = query_of(url)
    assert query["response_type"] == "code"
    assert query["client_id"] == "sandbox-client-id"
    assert query["access_type"] == "offline"
    assert query["prompt"] == "consent"
    assert "ZohoCRM.modules.leads.ALL" in query["scope"]
    assert query["redirect_uri"] == f"http://localhost{PREFIX}/oauth/callback"
    with admin.client.session_transaction() as session:
        assert session["_zoho_sync_oauth_state"] == query["state"]
    assert "sandbox-client-secret" not in url


def test_connect_uses_the_configured_redirect_uri(make_admin) -> None:
    admin = make_admin(ZOHO_SYNC_REDIRECT_URI="https://crm.example.org/admin/zoho/oauth/callback")
    query = query_of(_start_connect(admin))
    assert query["redirect_uri"] == "https://crm.example.org/admin/zoho/oauth/callback"


def test_connect_with_an_untrusted_accounts_url_says_which_setting_to_fix(make_admin) -> None:
    admin = make_admin(ZOHO_SYNC_ACCOUNTS_URL="http://127.0.0.1:1")
    response = admin.post("/connect")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "http://127.0.0.1:1" in text and "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS" in text


def test_a_callback_with_a_wrong_state_is_refused_and_stores_nothing(admin: Admin) -> None:
    _start_connect(admin)
    response = admin.get(
        "/oauth/callback?state=not-the-one&code=1000.abc"
        "&accounts-server=https%3A%2F%2Faccounts.zoho.com&location=us"
    )
    assert response.status_code == 400
    assert "not one we started" in response.get_data(as_text=True)
    assert _connection_count(admin) == 0


def test_a_callback_without_a_state_is_refused(admin: Admin) -> None:
    _start_connect(admin)
    response = admin.get("/oauth/callback?code=1000.abc&location=us")
    assert response.status_code == 400
    assert _connection_count(admin) == 0


def test_a_callback_nobody_started_is_refused(admin: Admin) -> None:
    response = admin.get("/oauth/callback?state=guess&code=1000.abc")
    assert response.status_code == 400


def test_the_state_is_good_for_one_callback_only(admin: Admin) -> None:
    state = query_of(_start_connect(admin))["state"]
    untrusted = "&accounts-server=https%3A%2F%2Fevil.example"
    first = admin.get(f"/oauth/callback?state={state}&code=x{untrusted}")
    assert "evil.example" in first.get_data(as_text=True)  # got past the state check
    second = admin.get(f"/oauth/callback?state={state}&code=x{untrusted}")
    assert second.status_code == 400
    assert "not one we started" in second.get_data(as_text=True)


def test_a_callback_naming_an_untrusted_accounts_server_is_refused_naming_it(
    admin: Admin,
) -> None:
    state = query_of(_start_connect(admin))["state"]
    response = admin.get(
        f"/oauth/callback?state={state}&code=1000.abc&location=us"
        "&accounts-server=https%3A%2F%2Faccounts.evil.example"
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "https://accounts.evil.example" in text
    assert "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS" in text
    assert _connection_count(admin) == 0


def test_a_declined_consent_says_so(admin: Admin) -> None:
    state = query_of(_start_connect(admin))["state"]
    response = admin.get(f"/oauth/callback?state={state}&error=access_denied")
    assert response.status_code == 400
    assert "declined" in response.get_data(as_text=True)
    assert _connection_count(admin) == 0


def test_connecting_through_the_sandbox_stores_the_connection_and_shows_the_org(
    sandbox_admin: Admin, zoho_sandbox
) -> None:
    zoho_sandbox.set_org(company_name="Sandbox Widgets Pty")
    back = consent_in_sandbox(_start_connect(sandbox_admin))
    assert back.startswith(f"http://localhost{PREFIX}/oauth/callback?")
    assert query_of(back)["accounts-server"] == zoho_sandbox.accounts_server

    response = sandbox_admin.client.get(local_path(back))
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{PREFIX}/settings")
    assert _connection_count(sandbox_admin) == 1

    settings_page = sandbox_admin.text("/settings")
    assert "Connected to Sandbox Widgets Pty" in settings_page
    overview = sandbox_admin.text("/")
    assert "Sandbox Widgets Pty" in overview
    assert zoho_sandbox.api_domain in overview
    with sandbox_admin.host.app.app_context():
        stored = sandbox_admin.state.token_store().load()
    assert stored is not None and stored.refresh_token not in overview


def test_a_declined_consent_in_the_sandbox_stores_nothing(
    sandbox_admin: Admin,
) -> None:
    back = consent_in_sandbox(_start_connect(sandbox_admin), decision="deny")
    response = sandbox_admin.client.get(local_path(back))
    assert response.status_code == 400
    assert _connection_count(sandbox_admin) == 0


def test_a_wrong_client_secret_asks_about_data_centre_or_secret(make_admin, zoho_sandbox) -> None:
    config = {**sandbox_config(zoho_sandbox), "ZOHO_SYNC_CLIENT_SECRET": "wrong-secret"}
    admin = make_admin(**config)
    back = consent_in_sandbox(_start_connect(admin))
    response = admin.client.get(local_path(back))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Wrong data centre or client secret?" in text
    assert "wrong-secret" not in text
    assert _connection_count(admin) == 0


def test_a_used_grant_code_is_an_error_page_not_a_crash(sandbox_admin: Admin) -> None:
    back = consent_in_sandbox(_start_connect(sandbox_admin))
    assert sandbox_admin.client.get(local_path(back)).status_code == 302
    # Replay the same code with a fresh state: Zoho refuses the code (invalid_code).
    state = query_of(_start_connect(sandbox_admin))["state"]
    replay = {**query_of(back), "state": state}
    query = "&".join(f"{key}={value}" for key, value in replay.items())
    response = sandbox_admin.client.get(f"{PREFIX}/oauth/callback?{query}")
    assert response.status_code == 400
    assert "Connect Zoho CRM again" in response.get_data(as_text=True)


def test_disconnect_revokes_at_zoho_and_forgets_the_connection(
    connected_admin: Admin, zoho_sandbox
) -> None:
    with connected_admin.host.app.app_context():
        tokens = connected_admin.state.token_store().load()
    assert tokens is not None
    response = connected_admin.post("/disconnect", follow_redirects=True)
    assert response.status_code == 200
    assert "the access was revoked at Zoho" in response.get_data(as_text=True)
    assert _connection_count(connected_admin) == 0
    still_valid = zoho_sandbox.session.post(
        f"{zoho_sandbox.accounts_server}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "client_id": zoho_sandbox.client_id,
            "client_secret": zoho_sandbox.client_secret,
        },
    ).json()
    assert "error" in still_valid


def test_disconnect_forgets_the_connection_even_when_zoho_cannot_be_reached(
    make_admin,
) -> None:
    unreachable = "http://127.0.0.1:9"
    admin = make_admin(ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS=unreachable)
    admin.store_connection(accounts_server=unreachable)
    response = admin.post("/disconnect", follow_redirects=True)
    assert response.status_code == 200
    assert "could not be told to revoke" in response.get_data(as_text=True)
    assert _connection_count(admin) == 0


def test_disconnect_with_htmx_swaps_the_overview_in_place(connected_admin: Admin) -> None:
    """No page load: the overview's live part comes back showing "Not connected", the
    message rides along out of band, and the other panels are told to refresh."""
    response = connected_admin.htmx_post("/disconnect")
    assert response.status_code == 200
    assert "HX-Redirect" not in response.headers
    assert response.headers["HX-Trigger"] == "zs-changed"
    text = response.get_data(as_text=True)
    assert text.startswith('<div id="zs-overview"') or '<div id="zs-overview"' in text
    assert "Not connected" in text and 'action="/admin/zoho/connect"' in text
    assert '<div id="zs-messages" hx-swap-oob="true">' in text
    assert text.count("Disconnected from Zoho CRM") == 1
    assert _connection_count(connected_admin) == 0
    # The message was shown with the swap; the next page does not repeat it.
    assert "Disconnected from Zoho CRM" not in connected_admin.text("/")
