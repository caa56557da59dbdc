"""Tokens, the client secret and record data never reach logs or exception messages."""

from __future__ import annotations

import logging

import pytest
import requests
import responses

from flask_zoho_sync.zoho.auth import TokenManager, ZohoOAuth
from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.errors import ZohoError

from .conftest import (
    ACCESS_TOKEN,
    ACCOUNTS,
    CLIENT_SECRET,
    CRM,
    NEW_ACCESS_TOKEN,
    REFRESH_TOKEN,
    TOKEN_URL,
    token_reply,
)

EMAIL = "ada.lovelace@example.com"
SECRETS = (ACCESS_TOKEN, NEW_ACCESS_TOKEN, REFRESH_TOKEN, CLIENT_SECRET, EMAIL)
INVALID_TOKEN = {"code": "INVALID_TOKEN", "details": {}, "message": "invalid", "status": "error"}


def test_debug_logs_across_a_refresh_and_calls_hold_no_secrets(
    caplog: pytest.LogCaptureFixture,
    client: ZohoClient,
    oauth: ZohoOAuth,
    manager: TokenManager,
    rsps: responses.RequestsMock,
) -> None:
    caplog.set_level(logging.DEBUG)
    rsps.post(TOKEN_URL, json={**token_reply(), "refresh_token": REFRESH_TOKEN})
    rsps.post(f"{CRM}/Leads/upsert", status=401, json=INVALID_TOKEN)
    rsps.post(
        f"{CRM}/Leads/upsert",
        json={
            "data": [
                {
                    "code": "DUPLICATE_DATA",
                    "details": {"api_name": "Email", "json_path": "$.data[0].Email"},
                    "message": "duplicate data",
                    "status": "error",
                }
            ]
        },
    )
    rsps.get(f"{CRM}/Leads", json={"data": [{"id": "1", "Email": EMAIL}], "info": {}})
    rsps.get(f"{CRM}/org", status=500, body=f"<html>oops {EMAIL} {ACCESS_TOKEN}</html>")
    rsps.post(f"{CRM}/Leads", body=requests.ReadTimeout("read timed out"))
    messages: list[str] = []

    oauth.exchange_code("1000.grant", ACCOUNTS)
    client.upsert("Leads", [{"Last_Name": "Lovelace", "Email": EMAIL}])
    list(client.iter_records("Leads", ["Email"]))
    for failing_call in (client.org, lambda: client.insert("Leads", [{"Email": EMAIL}])):
        with pytest.raises(ZohoError) as caught:
            failing_call()
        messages.append(str(caught.value))
        messages.append(repr(caught.value))
    messages.extend([repr(manager.current()), repr(oauth)])

    assert any("POST /Leads/upsert" in r.getMessage() for r in caplog.records)
    everything = caplog.text + "\n".join(messages)
    for secret in SECRETS:
        assert secret not in everything


def test_request_body_is_not_in_the_error_for_a_refused_write(
    client: ZohoClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        f"{CRM}/Leads/upsert",
        status=400,
        json={"code": "INVALID_DATA", "details": {"api_name": "Email"}, "message": "invalid data"},
    )

    with pytest.raises(ZohoError) as caught:
        client.upsert("Leads", [{"Email": EMAIL}])

    assert EMAIL not in str(caught.value)
