"""The figures of the reliability suite: which faults were tried, and what survived them.

Issue #9 asks for a report of scenarios, inputs, survivals and losses, printed at the end of
the run. Each scenario test records itself through the ``fault_scenario`` fixture; a test that
fails counts as not survived whatever it tallied, so the table can never look better than
the run. The same figures are written as JSON to ``test-artifacts/fault-report.json`` so the
README's summary can be checked against a real run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class ScenarioResult:
    """One attacked situation and what both sides looked like once it was over."""

    category: str
    name: str
    survived: bool = False
    #: Records compared field by field between host and Zoho after quiescence.
    records_checked: int = 0
    #: A record one side should have and does not.
    lost: int = 0
    #: A record present twice on one side (same email or same link).
    duplicated: int = 0
    #: A record deleted on one side that came back.
    resurrected: int = 0
    #: Generated inputs fed in (hostile requests, odd values, random histories).
    inputs: int = 0
    note: str = ""


@dataclass
class FaultReport:
    results: list[ScenarioResult] = field(default_factory=list)

    def by_category(self) -> dict[str, list[ScenarioResult]]:
        grouped: dict[str, list[ScenarioResult]] = defaultdict(list)
        for result in self.results:
            grouped[result.category].append(result)
        return dict(grouped)

    def totals(self) -> dict[str, int]:
        return {
            "scenarios": len(self.results),
            "survived": sum(r.survived for r in self.results),
            "records_checked": sum(r.records_checked for r in self.results),
            "inputs": sum(r.inputs for r in self.results),
            "lost": sum(r.lost for r in self.results),
            "duplicated": sum(r.duplicated for r in self.results),
            "resurrected": sum(r.resurrected for r in self.results),
        }

    def lines(self) -> list[str]:
        width = max([len("category"), *(len(r.category) for r in self.results)])
        header = (
            f"{'category':<{width}} {'run':>5} {'survived':>8} {'records':>8} {'inputs':>7} "
            f"{'lost':>5} {'dup':>4} {'back':>5}"
        )
        rows = [header, "-" * len(header)]
        for category, results in sorted(self.by_category().items()):
            rows.append(
                f"{category:<{width}} {len(results):>5} {sum(r.survived for r in results):>8} "
                f"{sum(r.records_checked for r in results):>8} "
                f"{sum(r.inputs for r in results):>7} {sum(r.lost for r in results):>5} "
                f"{sum(r.duplicated for r in results):>4} "
                f"{sum(r.resurrected for r in results):>5}"
            )
        totals = self.totals()
        rows.append("-" * len(header))
        rows.append(
            f"{'total':<{width}} {totals['scenarios']:>5} {totals['survived']:>8} "
            f"{totals['records_checked']:>8} {totals['inputs']:>7} {totals['lost']:>5} "
            f"{totals['duplicated']:>4} {totals['resurrected']:>5}"
        )
        failed = [r for r in self.results if not r.survived]
        for result in failed:
            rows.append(f"NOT SURVIVED: {result.category} / {result.name} {result.note}".rstrip())
        return rows

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "totals": self.totals(),
            "scenarios": [asdict(result) for result in self.results],
        }
        path.write_text(json.dumps(payload, indent=2), encoding="utf-8")


#: One report per test process; under pytest-xdist each worker fills its own and the
#: controller gathers them (tests/conftest.py, pytest_testnodedown).
REPORT = FaultReport()
