"""OAuth as Zoho Accounts does it: consent, one-time codes, 200-status errors, caps, revoke."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests

from flask_zoho_sync.sandbox import SandboxHandle

from .conftest import Api

REDIRECT = "http://app.test/zoho/callback"
SCOPE = "ZohoCRM.modules.ALL,ZohoCRM.settings.fields.READ"


def _consent(
    sandbox: SandboxHandle, decision: str = "authorise", **extra: str
) -> dict[str, list[str]]:
    params = {
        "client_id": sandbox.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "csrf-123",
        "access_type": "offline",
        "prompt": "consent",
        **extra,
    }
    page = requests.get(f"{sandbox.url}/oauth/v2/auth", params=params, timeout=10)
    assert page.status_code == 200
    assert "Authorise" in page.text and "Deny" in page.text
    users = re.findall(r'<option value="(\d+)"', page.text)
    assert len(users) >= 2  # the account is chosen among the sandbox's users
    form = {**params, "decision": decision, "user_id": users[1]}
    answer = requests.post(
        f"{sandbox.url}/oauth/v2/auth", data=form, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def _exchange(sandbox: SandboxHandle, code: str, redirect_uri: str = REDIRECT) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/oauth/v2/token",
        data={
            "grant_type": "authorization_code",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "redirect_uri": redirect_uri,
            "code": code,
        },
        timeout=10,
    )


def _refresh(
    sandbox: SandboxHandle, refresh_token: str, secret: str | None = None
) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": sandbox.client_id,
            "client_secret": secret or sandbox.client_secret,
            "refresh_token": refresh_token,
        },
        timeout=10,
    )


def test_consent_redirect_echoes_state_and_names_the_accounts_server(
    sandbox: SandboxHandle,
) -> None:
    query = _consent(sandbox)
    assert query["state"] == ["csrf-123"]
    assert query["location"] == ["us"]
    assert query["accounts-server"] == [sandbox.url]
    assert query["code"][0].startswith("1000.")


def test_code_exchange_returns_zoho_token_body_and_the_user_chosen(sandbox: SandboxHandle) -> None:
    code = _consent(sandbox)["code"][0]
    body = _exchange(sandbox, code).json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "api_domain",
        "token_type",
        "expires_in",
        "scope",
    }
    assert body["api_domain"] == sandbox.url
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "ZohoCRM.modules.ALL ZohoCRM.settings.fields.READ"
    me = requests.get(
        f"{sandbox.url}/crm/v8/users",
        params={"type": "CurrentUser"},
        headers={"Authorization": f"Zoho-oauthtoken {body['access_token']}"},
        timeout=10,
    )
    assert me.status_code == 401  # users scope not granted
    assert me.json()["code"] == "OAUTH_SCOPE_MISMATCH"


def test_grant_code_is_one_time(sandbox: SandboxHandle) -> None:
    code = _consent(sandbox)["code"][0]
    assert "access_token" in _exchange(sandbox, code).json()
    second = _exchange(sandbox, code)
    assert second.status_code == 200
    assert second.json() == {"error": "invalid_code"}


def test_grant_code_expires_after_two_minutes_of_sandbox_time(sandbox: SandboxHandle) -> None:
    code = _consent(sandbox)["code"][0]
    sandbox.advance_clock(121)
    assert _exchange(sandbox, code).json() == {"error": "invalid_code"}


def test_deny_redirects_with_access_denied(sandbox: SandboxHandle) -> None:
    query = _consent(sandbox, decision="deny")
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["csrf-123"]
    assert "code" not in query


def test_online_access_gives_no_refresh_token(sandbox: SandboxHandle) -> None:
    code = _consent(sandbox, access_type="online")["code"][0]
    body = _exchange(sandbox, code).json()
    assert "access_token" in body and "refresh_token" not in body


def test_wrong_redirect_uri_and_wrong_secret_are_200_errors(sandbox: SandboxHandle) -> None:
    code = _consent(sandbox)["code"][0]
    wrong = _exchange(sandbox, code, redirect_uri="http://elsewhere.test/cb")
    assert wrong.status_code == 200 and wrong.json()["error"] == "invalid_redirect_uri"
    grant = sandbox.mint_refresh_token()
    bad_client = _refresh(sandbox, grant["refresh_token"], secret="nope")
    assert bad_client.status_code == 200
    assert bad_client.json() == {"error": "invalid_client"}


def test_unknown_client_gets_an_error_page(sandbox: SandboxHandle) -> None:
    page = requests.get(
        f"{sandbox.url}/oauth/v2/auth",
        params={
            "client_id": "nobody",
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": SCOPE,
        },
        timeout=10,
    )
    assert page.status_code == 400 and "Invalid Client" in page.text


def test_refresh_body_and_throttle_after_ten_in_ten_minutes(sandbox: SandboxHandle) -> None:
    grant = sandbox.mint_refresh_token()
    for _ in range(10):
        body = _refresh(sandbox, grant["refresh_token"]).json()
        assert set(body) == {"access_token", "scope", "api_domain", "token_type", "expires_in"}
    throttled = _refresh(sandbox, grant["refresh_token"])
    assert throttled.status_code == 200
    assert throttled.json() == {
        "error_description": "You have made too many requests continuously. "
        "Please try again after some time.",
        "error": "Access Denied",
        "status": "failure",
    }
    sandbox.advance_clock(601)
    assert "access_token" in _refresh(sandbox, grant["refresh_token"]).json()


def test_sixteenth_access_token_invalidates_the_oldest(sandbox: SandboxHandle) -> None:
    grant = sandbox.mint_refresh_token()
    issued = []
    for round_ in range(2):  # the refresh throttle allows 10 per 10 minutes
        for _ in range(8):
            issued.append(_refresh(sandbox, grant["refresh_token"]).json()["access_token"])
        if round_ == 0:
            sandbox.advance_clock(601)

    # 16 tokens, but the clock moved 10 minutes: all still within their hour
    def status(token: str) -> requests.Response:
        return requests.get(
            f"{sandbox.url}/crm/v8/org",
            headers={"Authorization": f"Zoho-oauthtoken {token}"},
            timeout=10,
        )

    oldest = status(issued[0])
    assert oldest.status_code == 401
    assert oldest.json()["code"] == "INVALID_OAUTHTOKEN"
    assert status(issued[1]).status_code == 200
    assert status(issued[-1]).status_code == 200


def test_expired_access_token_is_401_invalid_token(sandbox: SandboxHandle, api: Api) -> None:
    assert api.get("/org").status_code == 200
    sandbox.advance_clock(3601)
    expired = api.get("/org")
    assert expired.status_code == 401
    assert expired.json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }


def test_bearer_header_is_refused(api: Api) -> None:
    response = api.session.get(
        f"{api.base}/crm/v8/org", headers={"Authorization": f"Bearer {api.token}"}, timeout=10
    )
    assert response.status_code == 401


def test_revoke_kills_refresh_and_access_tokens(sandbox: SandboxHandle, api: Api) -> None:
    revoke = requests.post(
        f"{sandbox.url}/oauth/v2/token/revoke",
        params={"token": api.grant["refresh_token"]},
        timeout=10,
    )
    assert revoke.status_code == 200 and revoke.json() == {"status": "success"}
    assert api.get("/org").json()["code"] == "INVALID_TOKEN"
    assert _refresh(sandbox, api.grant["refresh_token"]).json() == {"error": "invalid_code"}
    unknown = requests.post(
        f"{sandbox.url}/oauth/v2/token/revoke", params={"token": "1000.x.y"}, timeout=10
    )
    assert unknown.status_code == 400


def test_fault_switches_expire_and_revoke_every_token(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(expire_access_tokens=True)
    assert api.get("/org").status_code == 401
    fresh = api.refresh()["access_token"]
    assert api.get("/org", token=fresh).status_code == 200
    sandbox.faults(revoke_all_tokens=True)
    assert api.get("/org", token=fresh).status_code == 401
    assert api.refresh() == {"error": "invalid_code"}


def test_token_ttl_is_configurable(sandbox: SandboxHandle, api: Api) -> None:
    sandbox.faults(token_ttl=60)
    body = api.refresh()
    assert body["expires_in"] == 60
    sandbox.advance_clock(61)
    assert api.get("/org", token=body["access_token"]).status_code == 401


def test_configured_redirect_uris_are_enforced() -> None:
    from flask_zoho_sync.sandbox import SandboxServer

    with SandboxServer(redirect_uris=[REDIRECT]) as server:
        base = {"client_id": "sandbox-client-id", "response_type": "code", "scope": SCOPE}
        ok = requests.get(
            f"{server.url}/oauth/v2/auth", params={**base, "redirect_uri": REDIRECT}, timeout=10
        )
        assert ok.status_code == 200
        other = requests.get(
            f"{server.url}/oauth/v2/auth",
            params={**base, "redirect_uri": "http://evil.test/cb"},
            timeout=10,
        )
        assert other.status_code == 400 and "Invalid Redirect Uri" in other.text
