"""A 401 the client can fix itself: one refresh, one repeat, then "reconnect" (issue 24).

Zoho sometimes answers AUTHENTICATION_FAILURE for a token that one refresh cures, as it
answers INVALID_TOKEN for an expired one; asking the admin to reconnect at the first such
401 interrupts a sync for nothing. These tests pin the bounds too: exactly one refresh,
exactly one repeat, writes included (a 401 means Zoho applied nothing), no loop when the
refresh token itself is dead, and one refresh between threads that hit the 401 together.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import responses

from flask_zoho_sync.zoho.auth import MemoryTokenStore, TokenManager, ZohoOAuth
from flask_zoho_sync.zoho.client import RecordResult, ZohoClient
from flask_zoho_sync.zoho.errors import (
    ZohoReconnectRequired,
    ZohoScopeMismatch,
    ZohoTokenRejected,
)
from flask_zoho_sync.zoho.meter import UsageMeter

from .conftest import (
    ACCESS_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    CRM,
    NEW_ACCESS_TOKEN,
    TOKEN_URL,
    FakeClock,
    RecordedSleeps,
    token_reply,
)

#: Reference §4.5: the body shape and each code's message as the table gives it.
REJECTED_TOKEN_BODIES = {
    "INVALID_TOKEN": {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    },
    "INVALID_OAUTHTOKEN": {
        "code": "INVALID_OAUTHTOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    },
    "AUTHENTICATION_FAILURE": {
        "code": "AUTHENTICATION_FAILURE",
        "details": {},
        "message": "Authentication failed",
        "status": "error",
    },
}
AUTH_FAILURE = REJECTED_TOKEN_BODIES["AUTHENTICATION_FAILURE"]
ORG = {"org": [{"id": "1", "time_zone": "Europe/Berlin"}]}
WRITTEN = {
    "data": [
        {
            "code": "SUCCESS",
            "details": {"id": "5725767000000524157", "Modified_Time": "2026-01-15T10:20:30+05:30"},
            "message": "record added",
            "status": "success",
        }
    ]
}
DELETED = {
    "data": [
        {
            "code": "SUCCESS",
            "details": {"id": "5725767000000524157"},
            "message": "record deleted",
            "status": "success",
        }
    ]
}

WriteCall = Callable[[ZohoClient], list[RecordResult]]

#: Every write the client makes, as (name, HTTP method, URL, success body, call).
WRITES: list[tuple[str, str, str, dict[str, Any], WriteCall]] = [
    (
        "insert",
        "POST",
        f"{CRM}/Leads",
        WRITTEN,
        lambda client: client.insert("Leads", [{"Last_Name": "Boyle"}]),
    ),
    (
        "update",
        "PUT",
        f"{CRM}/Leads",
        WRITTEN,
        lambda client: client.update("Leads", [{"id": "5725767000000524157", "City": "Pune"}]),
    ),
    (
        "upsert",
        "POST",
        f"{CRM}/Leads/upsert",
        WRITTEN,
        lambda client: client.upsert("Leads", [{"Last_Name": "Boyle", "Email": "p@example.com"}]),
    ),
    (
        "delete",
        "DELETE",
        f"{CRM}/Leads",
        DELETED,
        lambda client: client.delete("Leads", ["5725767000000524157"]),
    ),
]
WRITE_IDS = [write[0] for write in WRITES]


def authorization_of(call: Any) -> str:
    return str(call.request.headers["Authorization"])


@pytest.mark.parametrize("code", sorted(REJECTED_TOKEN_BODIES))
def test_a_rejected_token_is_refreshed_once_and_the_call_repeated_once(
    code: str,
    client: ZohoClient,
    rsps: responses.RequestsMock,
    store: MemoryTokenStore,
    sleeps: RecordedSleeps,
) -> None:
    rsps.get(f"{CRM}/org", status=401, json=REJECTED_TOKEN_BODIES[code])
    rsps.post(TOKEN_URL, json=token_reply())
    rsps.get(f"{CRM}/org", json=ORG)

    assert client.org()["time_zone"] == "Europe/Berlin"

    assert [call.request.url for call in rsps.calls] == [f"{CRM}/org", TOKEN_URL, f"{CRM}/org"]
    assert authorization_of(rsps.calls[0]) == f"Zoho-oauthtoken {ACCESS_TOKEN}"
    assert authorization_of(rsps.calls[2]) == f"Zoho-oauthtoken {NEW_ACCESS_TOKEN}"
    stored = store.load()
    assert stored is not None and stored.access_token == NEW_ACCESS_TOKEN
    assert sleeps == []  # a refresh, not a backoff


def test_the_repeated_call_and_the_refresh_are_metered_like_any_call(
    client: ZohoClient, rsps: responses.RequestsMock, meter: UsageMeter
) -> None:
    rsps.get(f"{CRM}/org", status=401, json=AUTH_FAILURE)
    rsps.post(TOKEN_URL, json=token_reply())
    rsps.get(f"{CRM}/org", json=ORG)

    client.org()

    usage = meter.snapshot()
    assert usage["calls"] == {"GET /org": 2, "POST /oauth/v2/token": 1}
    # Zoho charges the call it processed, not the refused one nor the token call.
    assert usage["credits"] == {"GET /org": 1, "POST /oauth/v2/token": 0}


@pytest.mark.parametrize("code", sorted(REJECTED_TOKEN_BODIES))
def test_a_token_refused_again_after_the_refresh_asks_to_reconnect(
    code: str, client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/org", status=401, json=REJECTED_TOKEN_BODIES[code])
    rsps.post(TOKEN_URL, json=token_reply())

    with pytest.raises(ZohoTokenRejected) as caught:
        client.org()

    assert isinstance(caught.value, ZohoReconnectRequired)
    assert caught.value.code == code
    assert "Reconnect Zoho CRM" in str(caught.value)
    assert [call.request.url for call in rsps.calls] == [f"{CRM}/org", TOKEN_URL, f"{CRM}/org"]


def test_a_revoked_refresh_token_asks_to_reconnect_without_repeating_the_call(
    client: ZohoClient, rsps: responses.RequestsMock, store: MemoryTokenStore
) -> None:
    rsps.get(f"{CRM}/org", status=401, json=AUTH_FAILURE)
    # Reference §1.6: a revoked refresh token gets invalid_code, with HTTP 200.
    rsps.post(TOKEN_URL, json={"error": "invalid_code"})

    with pytest.raises(ZohoReconnectRequired) as caught:
        client.org()

    assert caught.value.code == "invalid_code"
    assert "refresh token was revoked" in str(caught.value)
    assert [call.request.url for call in rsps.calls] == [f"{CRM}/org", TOKEN_URL]
    stored = store.load()
    assert stored is not None and stored.access_token == ACCESS_TOKEN


def test_a_scope_mismatch_asks_to_reconnect_without_a_refresh(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    body = {"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "Unauthorized"}
    rsps.get(f"{CRM}/org", status=401, json={**body, "status": "error"})

    with pytest.raises(ZohoScopeMismatch) as caught:
        client.org()

    assert "scope" in caught.value.advice
    assert len(rsps.calls) == 1


@pytest.mark.parametrize(("name", "method", "url", "success", "write"), WRITES, ids=WRITE_IDS)
def test_a_write_refused_for_its_token_is_sent_once_more_with_the_new_token(
    name: str,
    method: str,
    url: str,
    success: dict[str, Any],
    write: WriteCall,
    client: ZohoClient,
    rsps: responses.RequestsMock,
) -> None:
    rsps.add(method, url, status=401, json=AUTH_FAILURE)
    rsps.post(TOKEN_URL, json=token_reply())
    rsps.add(method, url, json=success)

    results = write(client)

    assert [result.ok for result in results] == [True]
    assert results[0].record_id == "5725767000000524157"
    sent = [call for call in rsps.calls if call.request.url != TOKEN_URL]
    assert len(sent) == 2
    assert sent[0].request.body == sent[1].request.body  # the same write, repeated as it was
    assert sent[0].request.url == sent[1].request.url
    assert authorization_of(sent[1]) == f"Zoho-oauthtoken {NEW_ACCESS_TOKEN}"
    assert [call.request.url for call in rsps.calls].count(TOKEN_URL) == 1


@pytest.mark.parametrize(("name", "method", "url", "success", "write"), WRITES, ids=WRITE_IDS)
def test_a_write_refused_twice_asks_to_reconnect_after_one_refresh(
    name: str,
    method: str,
    url: str,
    success: dict[str, Any],
    write: WriteCall,
    client: ZohoClient,
    rsps: responses.RequestsMock,
) -> None:
    rsps.add(method, url, status=401, json=AUTH_FAILURE)
    rsps.post(TOKEN_URL, json=token_reply())

    with pytest.raises(ZohoTokenRejected) as caught:
        write(client)

    assert caught.value.partial_results == []
    assert [call.request.method for call in rsps.calls] == [method, "POST", method]


@pytest.mark.parametrize(("name", "method", "url", "success", "write"), WRITES, ids=WRITE_IDS)
def test_a_write_with_a_revoked_refresh_token_is_not_repeated(
    name: str,
    method: str,
    url: str,
    success: dict[str, Any],
    write: WriteCall,
    client: ZohoClient,
    rsps: responses.RequestsMock,
) -> None:
    rsps.add(method, url, status=401, json=AUTH_FAILURE)
    rsps.post(TOKEN_URL, json={"error": "invalid_code"})

    with pytest.raises(ZohoReconnectRequired) as caught:
        write(client)

    assert caught.value.code == "invalid_code"
    assert [call.request.method for call in rsps.calls] == [method, "POST"]
    assert rsps.calls[1].request.url == TOKEN_URL


def _old_token_refused_together(
    rsps: responses.RequestsMock, callers: int
) -> tuple[list[str], threading.Barrier]:
    """`GET /org` that refuses the old token, but only once every caller holds a 401, so
    all of them see the old token rejected before anyone refreshes."""
    together = threading.Barrier(callers, timeout=10)
    authorizations: list[str] = []

    def org(request: Any) -> tuple[int, dict[str, str], str]:
        authorization = str(request.headers["Authorization"])
        authorizations.append(authorization)
        headers = {"Content-Type": "application/json"}
        if authorization == f"Zoho-oauthtoken {ACCESS_TOKEN}":
            together.wait()
            return 401, headers, json.dumps(AUTH_FAILURE)
        return 200, headers, json.dumps(ORG)

    rsps.add_callback(responses.GET, f"{CRM}/org", callback=org)
    rsps.post(TOKEN_URL, json=token_reply())
    return authorizations, together


def _run_together(calls: list[Callable[[], Any]]) -> tuple[list[Any], list[BaseException]]:
    results: list[Any] = []
    failures: list[BaseException] = []

    def run(call: Callable[[], Any]) -> None:
        try:
            results.append(call())
        except BaseException as exc:  # surfaced by the caller's assertions
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    return results, failures


def test_threads_refused_together_share_one_refresh(
    client: ZohoClient, rsps: responses.RequestsMock, store: MemoryTokenStore
) -> None:
    authorizations, _ = _old_token_refused_together(rsps, callers=2)

    results, failures = _run_together([client.org, client.org])

    assert failures == []
    assert [org["time_zone"] for org in results] == ["Europe/Berlin"] * 2
    assert [call.request.url for call in rsps.calls].count(TOKEN_URL) == 1
    assert store.saves == 1
    assert authorizations.count(f"Zoho-oauthtoken {NEW_ACCESS_TOKEN}") == 2


def test_workers_with_their_own_clients_on_one_store_share_one_refresh(
    rsps: responses.RequestsMock,
    store: MemoryTokenStore,
    clock: FakeClock,
    sleeps: RecordedSleeps,
) -> None:
    """Two workers (each its own OAuth client, token manager and HTTP client) on the one
    stored connection: the manager's lock and re-read let only the first refresh."""
    _old_token_refused_together(rsps, callers=2)
    clients = [
        ZohoClient(
            TokenManager(ZohoOAuth(CLIENT_ID, CLIENT_SECRET, clock=clock), store, clock=clock),
            sleep=sleeps,
        )
        for _ in range(2)
    ]

    results, failures = _run_together([clients[0].org, clients[1].org])

    assert failures == []
    assert len(results) == 2
    assert [call.request.url for call in rsps.calls].count(TOKEN_URL) == 1
    assert store.saves == 1
