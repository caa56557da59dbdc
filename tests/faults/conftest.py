"""Record every fault scenario; tests/conftest.py prints the suite's figures at the end of the
run (there, so that under pytest-xdist the controller gathers every worker's scenarios)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.zoho.client import ZohoClient
from tests.engine.conftest import (  # noqa: F401 - synced and its config: shared fixtures
    connected_host,
    synced,
    synced_config,
)
from tests.faults.report import REPORT, ScenarioResult
from tests.faults.world import World


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        item.stash[_OUTCOME] = report.passed


_OUTCOME = pytest.StashKey[bool]()


@pytest.fixture
def fault_scenario(request: pytest.FixtureRequest) -> Iterator[ScenarioResult]:
    """A row of the report; the test fills in its tallies, the outcome decides survival.

    Tests name their row with ``@pytest.mark.fault_category("...")`` (else the module's
    name is used); the test's id, parameters included, becomes the scenario's name.
    """
    marker = request.node.get_closest_marker("fault_category")
    category = marker.args[0] if marker else request.node.module.__name__.rsplit(".", 1)[-1]
    result = ScenarioResult(category=category, name=request.node.name)
    yield result
    result.survived = bool(request.node.stash.get(_OUTCOME, False)) and not (
        result.lost or result.duplicated or result.resurrected
    )
    REPORT.results.append(result)


# -- a host connected to the sandbox, for the Zoho-side fault scenarios ----------------------


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the client's retry policy (how many, what) but not its waits: a 429 storm
    would otherwise spend most of the suite's time asleep."""
    monkeypatch.setattr(ZohoClient, "_backoff", lambda self, attempt: 0.002 * (attempt + 1))


@pytest.fixture
def world(
    database_url: str, redis_client: Any, zoho_sandbox: SandboxHandle, quick_retries: None
) -> Iterator[World]:
    """The engine tests' ``synced`` host, with a 1-second read timeout so a late answer is a
    timeout here, wrapped in a :class:`World` that knows what both sides should hold."""
    for host in connected_host(database_url, zoho_sandbox, ZOHO_SYNC_HTTP_TIMEOUT=1.0):
        yield World(host)
