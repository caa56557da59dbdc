"""What the client retries, how long it waits, and when it gives up."""

from __future__ import annotations

import pytest
import requests
import responses

from flask_zoho_sync.zoho.auth import MemoryTokenStore, TokenManager
from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.errors import (
    ZohoMalformedResponse,
    ZohoRateLimited,
    ZohoReconnectRequired,
    ZohoRetryLater,
    ZohoUnavailable,
)

from .conftest import (
    ACCESS_TOKEN,
    CRM,
    NEW_ACCESS_TOKEN,
    TOKEN_URL,
    RecordedSleeps,
    token_reply,
)

INVALID_TOKEN = {
    "code": "INVALID_TOKEN",
    "details": {},
    "message": "invalid oauth token",
    "status": "error",
}
TOO_MANY = {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "too many", "status": "error"}
INTERNAL = {"code": "INTERNAL_ERROR", "details": {}, "message": "internal error", "status": "error"}
ORG = {"org": [{"id": "1", "time_zone": "Europe/Berlin"}]}
UPSERTED = {"data": [{"code": "SUCCESS", "details": {"id": "1"}, "status": "success"}]}


def test_rejected_token_is_refreshed_once_and_the_call_repeated(
    client: ZohoClient, rsps: responses.RequestsMock, store: MemoryTokenStore
) -> None:
    rsps.get(f"{CRM}/org", status=401, json=INVALID_TOKEN)
    rsps.post(TOKEN_URL, json=token_reply())
    rsps.get(f"{CRM}/org", json=ORG)

    assert client.org()["time_zone"] == "Europe/Berlin"

    urls = [call.request.url for call in rsps.calls]
    assert urls == [f"{CRM}/org", TOKEN_URL, f"{CRM}/org"]
    assert rsps.calls[0].request.headers["Authorization"] == f"Zoho-oauthtoken {ACCESS_TOKEN}"
    assert rsps.calls[2].request.headers["Authorization"] == f"Zoho-oauthtoken {NEW_ACCESS_TOKEN}"
    stored = store.load()
    assert stored is not None
    assert stored.access_token == NEW_ACCESS_TOKEN


def test_token_still_rejected_after_a_refresh_requires_reconnecting(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/org", status=401, json=INVALID_TOKEN)
    rsps.post(TOKEN_URL, json=token_reply())

    with pytest.raises(ZohoReconnectRequired):
        client.org()

    assert [call.request.method for call in rsps.calls] == ["GET", "POST", "GET"]


def test_scope_mismatch_requires_reconnecting_without_a_refresh(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(
        f"{CRM}/org",
        status=401,
        json={
            "code": "OAUTH_SCOPE_MISMATCH",
            "details": {},
            "message": "Unauthorized",
            "status": "error",
        },
    )

    with pytest.raises(ZohoReconnectRequired):
        client.org()

    assert len(rsps.calls) == 1


def test_rate_limit_is_retried_after_a_jittered_backoff(
    client: ZohoClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    rsps.get(f"{CRM}/org", status=429, json=TOO_MANY)
    rsps.get(f"{CRM}/org", status=429, json=TOO_MANY)
    rsps.get(f"{CRM}/org", json=ORG)

    assert client.org()["id"] == "1"

    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5
    assert 0 <= sleeps[1] <= 1.0


def test_rate_limit_gives_up_after_max_retries(
    manager: TokenManager, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    client = ZohoClient(manager, max_retries=3, backoff_base=10, backoff_cap=15, sleep=sleeps)
    rsps.get(f"{CRM}/org", status=429, json=TOO_MANY)

    with pytest.raises(ZohoRateLimited):
        client.org()

    assert len(rsps.calls) == 4
    assert len(sleeps) == 3
    assert all(0 <= delay <= 15 for delay in sleeps)


def test_server_errors_are_retried_a_bounded_number_of_times(
    client: ZohoClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    rsps.get(f"{CRM}/org", status=500, json=INTERNAL)

    with pytest.raises(ZohoUnavailable) as caught:
        client.org()

    assert len(rsps.calls) == 5  # the first try and max_retries=4 more
    assert len(sleeps) == 4
    assert caught.value.http_status == 500


def test_server_error_then_success_returns_the_result(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/org", status=503, body="Service Unavailable")
    rsps.get(f"{CRM}/org", json=ORG)

    assert client.org()["id"] == "1"


def test_connection_errors_are_retried_then_reported_as_unavailable(
    client: ZohoClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    rsps.get(f"{CRM}/org", body=requests.ConnectionError("connection refused"))
    rsps.get(f"{CRM}/org", json=ORG)

    assert client.org()["id"] == "1"
    assert len(sleeps) == 1


def test_persistent_timeouts_become_unavailable(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/org", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(ZohoUnavailable) as caught:
        client.org()

    assert len(rsps.calls) == 5
    assert caught.value.maybe_applied is False


def test_insert_is_not_repeated_after_a_read_timeout(
    client: ZohoClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    rsps.post(f"{CRM}/Leads", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(ZohoUnavailable) as caught:
        client.insert("Leads", [{"Last_Name": "Lovelace"}])

    assert caught.value.maybe_applied is True
    assert len(rsps.calls) == 1
    assert sleeps == []


def test_insert_is_retried_when_the_connection_was_never_made(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Leads", body=requests.ConnectTimeout("connect timed out"))
    rsps.post(f"{CRM}/Leads", json=UPSERTED, status=201)

    assert client.insert("Leads", [{"Last_Name": "Lovelace"}])[0].ok
    assert len(rsps.calls) == 2


def test_upsert_is_retried_after_a_read_timeout(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Leads/upsert", body=requests.ReadTimeout("read timed out"))
    rsps.post(f"{CRM}/Leads/upsert", json=UPSERTED)

    assert client.upsert("Leads", [{"Last_Name": "Lovelace"}])[0].ok
    assert len(rsps.calls) == 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html><title>Zoho CRM is under maintenance</title></html>", "text/html"),
        ('{"data": [{"id": "1", "Email": "ada@exam', "application/json"),
    ],
)
def test_non_json_replies_are_malformed_after_bounded_retries(
    client: ZohoClient, rsps: responses.RequestsMock, body: str, content_type: str
) -> None:
    rsps.get(f"{CRM}/org", body=body, content_type=content_type)

    with pytest.raises(ZohoMalformedResponse) as caught:
        client.org()

    assert len(rsps.calls) == 5
    assert "ada@exam" not in str(caught.value)
    if content_type == "text/html":
        assert "under maintenance" in caught.value.excerpt


def test_json_of_an_unexpected_shape_is_malformed(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{CRM}/org", json={"org": []})

    with pytest.raises(ZohoMalformedResponse):
        client.org()


def test_a_200_carrying_an_error_body_is_retried_like_the_error_it_is(
    client: ZohoClient, rsps: responses.RequestsMock, sleeps: RecordedSleeps
) -> None:
    rsps.get(f"{CRM}/org", status=200, json=INTERNAL)
    rsps.get(f"{CRM}/org", json=ORG)

    assert client.org()["id"] == "1"
    assert len(sleeps) == 1


def test_a_200_error_body_to_a_create_is_not_repeated(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(f"{CRM}/Leads", status=200, json=INTERNAL)

    with pytest.raises(ZohoUnavailable) as caught:
        client.insert("Leads", [{"Last_Name": "Once"}])

    assert caught.value.maybe_applied
    assert len(rsps.calls) == 1


def test_an_expired_page_token_stops_the_listing_as_retry_later(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    page = {"id": "1", "Modified_Time": "2026-01-01T00:00:00+00:00"}
    rsps.get(
        f"{CRM}/Leads",
        json={"data": [page], "info": {"more_records": True, "next_page_token": "t1"}},
    )
    rsps.get(
        f"{CRM}/Leads",
        status=400,
        json={
            "code": "EXPIRED_VALUE",
            "details": {"param_name": "page_token"},
            "message": "the given page_token has expired",
            "status": "error",
        },
    )

    with pytest.raises(ZohoRetryLater) as caught:
        list(client.iter_records("Leads", ["Email"]))

    assert "page_token" in str(caught.value) and "next sync" in str(caught.value)
