"""Fixtures for the Zoho client's unit tests: a connection in the EU data centre (so a test
that calls the US host by mistake fails), a fake clock, recorded sleeps, and `responses`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from flask_zoho_sync.zoho.auth import MemoryTokenStore, TokenManager, TokenSet, ZohoOAuth
from flask_zoho_sync.zoho.client import ZohoClient
from flask_zoho_sync.zoho.meter import UsageMeter

ACCOUNTS = "https://accounts.zoho.eu"
API = "https://www.zohoapis.eu"
CRM = f"{API}/crm/v8"
TOKEN_URL = f"{ACCOUNTS}/oauth/v2/token"
CLIENT_ID = "1000.CLIENTIDCLIENTID"
CLIENT_SECRET = "client-secret-5f1e9c0b7d"
REFRESH_TOKEN = "1000.18e983526f0ca8575ea9c53b0cd5bb58.1bd83a6f2e22c3a7e1309d96ae439cc1"
ACCESS_TOKEN = "1000.2deaf8d0c268e3c85daa2a013a843b10.703adef2bb337b8ca36cfc5d7b83cf24"
NEW_ACCESS_TOKEN = "1000.9999f8d0c268e3c85daa2a013a84aaaa.aaaadef2bb337b8ca36cfc5d7b83bbbb"
NOW = 1_760_000_000.0


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordedSleeps(list[float]):
    """A `sleep` that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def query_of(call: Any) -> dict[str, str]:
    """The query string of a recorded `responses` call, as a flat dict."""
    parsed = parse_qs(urlsplit(call.request.url).query, keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def form_of(call: Any) -> dict[str, str]:
    body = call.request.body
    text = body.decode() if isinstance(body, bytes) else body or ""
    return {key: values[-1] for key, values in parse_qs(text).items()}


def token_reply(access_token: str = NEW_ACCESS_TOKEN, **extra: Any) -> dict[str, Any]:
    return {
        "access_token": access_token,
        "api_domain": API,
        "token_type": "Bearer",
        "expires_in": 3600,
        **extra,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def meter() -> UsageMeter:
    return UsageMeter()


@pytest.fixture
def valid_tokens(clock: FakeClock) -> TokenSet:
    return TokenSet(
        refresh_token=REFRESH_TOKEN,
        access_token=ACCESS_TOKEN,
        expires_at=clock.now + 3000,
        api_domain=API,
        accounts_server=ACCOUNTS,
        scope="ZohoCRM.modules.ALL",
    )


@pytest.fixture
def store(valid_tokens: TokenSet) -> MemoryTokenStore:
    return MemoryTokenStore(valid_tokens)


@pytest.fixture
def oauth(meter: UsageMeter, clock: FakeClock) -> ZohoOAuth:
    return ZohoOAuth(
        CLIENT_ID,
        CLIENT_SECRET,
        redirect_uri="https://app.example/zoho/callback",
        meter=meter,
        clock=clock,
    )


@pytest.fixture
def manager(oauth: ZohoOAuth, store: MemoryTokenStore, clock: FakeClock) -> TokenManager:
    return TokenManager(oauth, store, clock=clock)


@pytest.fixture
def client(manager: TokenManager, sleeps: RecordedSleeps, meter: UsageMeter) -> ZohoClient:
    return ZohoClient(manager, sleep=sleeps, meter=meter)
