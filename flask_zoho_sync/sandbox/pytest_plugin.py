"""pytest fixtures that give every test a clean Zoho CRM sandbox.

Registered through the ``pytest11`` entry point, so host apps get ``zoho_sandbox`` just
by installing the package. One server runs per test session (starting one per test would
be slow); each test gets it reset. ``--zoho-sandbox-url`` points the fixtures at a sandbox
that is already running, for example one started with ``python -m flask_zoho_sync.sandbox``.
Heavy imports happen inside the fixtures so loading the plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

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
