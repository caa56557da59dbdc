"""pytest fixtures that give every test a clean Zoho CRM sandbox.

Registered through the ``pytest11`` entry point, so host apps get ``zoho_sandbox`` just
by installing the package. One server runs per test session (starting one per test would
be slow); each test gets it reset. ``--zoho-sandbox-url`` points the fixtures at a sandbox
that is already running, for example one started with ``python -m flask_zoho_sync.sandbox``.
Heavy imports happen inside the fixtures so loading the plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .handle import SandboxHandle


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--zoho-sandbox-url",
        action="store",
        default=None,
        help="use the Zoho CRM sandbox at this URL instead of starting one",
    )


@pytest.fixture(scope="session")
def zoho_sandbox_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of the session's sandbox (started here unless given on the CLI)."""
    external = request.config.getoption("--zoho-sandbox-url")
    if external:
        yield external.rstrip("/")
        return
    from .server import SandboxServer

    with SandboxServer() as server:
        yield server.url


@pytest.fixture
def zoho_sandbox(zoho_sandbox_url: str) -> Iterator[SandboxHandle]:
    """A handle on a freshly reset sandbox (records, tokens, faults, clock, stats)."""
    handle = SandboxHandle(zoho_sandbox_url)
    handle.reset()
    try:
        yield handle
    finally:
        handle.close()


def sandbox_client(
    sandbox: SandboxHandle, *, scope: str | list[str] | None = None, **client_options: Any
) -> Any:
    """A ``ZohoClient`` connected to ``sandbox`` with a refresh token of its own, as a host
    app's worker holds one (``scope`` as the consent granted it; ``client_options`` for
    ``ZohoClient``, e.g. a shorter ``sleep``). Everything else (token refresh, paging,
    metering) is the client a host app runs in production."""
    from flask_zoho_sync.zoho.auth import MemoryTokenStore, TokenManager, TokenSet, ZohoOAuth
    from flask_zoho_sync.zoho.client import ZohoClient

    grant = sandbox.mint_refresh_token(scope=scope)
    oauth = ZohoOAuth(
        sandbox.client_id,
        sandbox.client_secret,
        accounts_url=sandbox.accounts_server,
        extra_accounts_servers=(sandbox.accounts_server,),
    )
    store = MemoryTokenStore(
        TokenSet(
            refresh_token=grant["refresh_token"],
            access_token=None,
            expires_at=0.0,
            api_domain=grant["api_domain"],
            accounts_server=grant["accounts_server"],
        )
    )
    return ZohoClient(TokenManager(oauth, store), **client_options)


@pytest.fixture
def zoho_sandbox_client(zoho_sandbox: SandboxHandle) -> Any:
    """A ``ZohoClient`` already connected to the fresh sandbox (:func:`sandbox_client`).

    Its backoff sleeps are shortened so tests of 429s and 5xx finish quickly.
    """
    import time

    return sandbox_client(zoho_sandbox, sleep=lambda seconds: time.sleep(min(seconds, 0.01)))
