"""Helpers for the sandbox's own tests: an authorised API client on the session sandbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flask_zoho_sync.sandbox import SandboxHandle

#: Zoho's DateTime shape: seconds precision and an explicit offset (reference §8).
ZOHO_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


class Api:
    """A tiny CRM client for tests: base URL, a fresh access token, auth header added."""

    def __init__(self, sandbox: SandboxHandle, scope: str | None = None) -> None:
        self.sandbox = sandbox
        self.base = sandbox.url
        self.session = requests.Session()
        self.grant = sandbox.mint_refresh_token(scope=scope)
        self.token = self.refresh()["access_token"]

    def refresh(self) -> dict[str, Any]:
        return self.session.post(
            f"{self.base}/oauth/v2/token",
            data={
                "grant_type": "refresh_token",
                "client_id": self.grant["client_id"],
                "client_secret": self.grant["client_secret"],
                "refresh_token": self.grant["refresh_token"],
            },
            timeout=10,
        ).json()

    def request(
        self, method: str, path: str, *, token: str | None = None, **kw: Any
    ) -> requests.Response:
        headers = {
            "Authorization": f"Zoho-oauthtoken {token or self.token}",
            **kw.pop("headers", {}),
        }
        return self.session.request(
            method, f"{self.base}/crm/v8{path}", headers=headers, timeout=30, **kw
        )

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def insert(self, module: str, *records: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.post(f"/{module}", json={"data": list(records)})
        assert response.status_code in (201, 202), response.text
        return response.json()["data"]

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def sandbox(zoho_sandbox: SandboxHandle) -> SandboxHandle:
    return zoho_sandbox


@pytest.fixture
def api(zoho_sandbox: SandboxHandle) -> Iterator[Api]:
    client = Api(zoho_sandbox)
    yield client
    client.close()
