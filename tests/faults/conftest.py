"""Record every fault scenario and print the suite's figures at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import synced  # noqa: F401 - the engine tests' host+Zoho pair
from tests.faults.report import REPORT, ScenarioResult

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "fault-report.json"


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT.results:
        return
    terminalreporter.section("Zoho sync fault report (#9)")
    for line in REPORT.lines():
        terminalreporter.write_line(line)
    REPORT.write_json(ARTIFACT)
    terminalreporter.write_line(f"(written to {ARTIFACT.relative_to(ARTIFACT.parents[1])})")
