"""A small two-sided world for fault scenarios: what both sides should hold, and a count of
how far they are from it.

Each scenario seeds contacts on both sides, syncs cleanly, changes both sides, runs syncs
under a fault, clears the fault and syncs until nothing moves. ``tally`` then compares every
host contact and every Zoho record with the expectation, field by field, and counts losses,
duplicates and deleted records that came back, so the report shows what was measured rather
than what was hoped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from flask_zoho_sync.ledger import Ledger
from flask_zoho_sync.models import RecordHistory, Run
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.sync.context import RunReport
from tests.engine.conftest import Synced
from tests.faults.report import ScenarioResult

#: Host attribute -> Zoho field compared on both sides (``vip`` is the VIP group/checkbox).
COMPARED = {
    "first_name": "First_Name",
    "last_name": "Last_Name",
    "phone": "Phone",
}

#: Counts in a run report that mean the run still moved something.
_MOVES = (
    "to_zoho.create",
    "to_zoho.update",
    "to_zoho.link",
    "to_zoho.delete",
    "to_host.create",
    "to_host.update",
    "to_host.link",
    "to_host.delete",
)


@dataclass
class Tally:
    records_checked: int = 0
    lost: int = 0
    duplicated: int = 0
    resurrected: int = 0
    mismatches: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def fill(self, result: ScenarioResult) -> None:
        result.records_checked += self.records_checked
        result.lost += self.lost
        result.duplicated += self.duplicated
        result.resurrected += self.resurrected

    @property
    def clean(self) -> bool:
        return not (
            self.lost or self.duplicated or self.resurrected or self.mismatches or self.unexpected
        )

    def explain(self) -> str:
        return (
            f"lost={self.lost} duplicated={self.duplicated} resurrected={self.resurrected} "
            f"mismatches={self.mismatches[:5]} unexpected={self.unexpected[:5]}"
        )


def host_rows(synced: Synced) -> list[dict[str, Any]]:
    """Every host contact (a list, so two contacts with one email both show)."""
    rows = []
    with synced.host.app.app_context():
        adapter = synced.state.adapter
        for batch in adapter.iter_batches():
            for contact in batch:
                values = adapter.get_values(contact)
                values["vip"] = "VIP" in adapter.get_groups(contact)
                values["id"] = contact.id
                rows.append(values)
    return rows


def compare(synced: Synced, expected: dict[str, dict[str, Any]], deleted: set[str]) -> Tally:
    """Count how both sides differ from ``expected`` (email -> values) and ``deleted``."""
    tally = Tally()
    contacts = host_rows(synced)
    records = synced.zoho.records("Leads")
    host_by_email = Counter((c.get("email") or "").lower() for c in contacts)
    zoho_by_email = Counter((r.get("Email") or "").lower() for r in records)
    for counts in (host_by_email, zoho_by_email):
        tally.duplicated += sum(n - 1 for n in counts.values() if n > 1)
    for email in deleted:
        tally.resurrected += int(email in host_by_email) + int(email in zoho_by_email)
    for email in set(host_by_email) | set(zoho_by_email):
        if email not in expected and email not in deleted:
            tally.unexpected.append(email)
    host_index = {(c.get("email") or "").lower(): c for c in contacts}
    zoho_index = {(r.get("Email") or "").lower(): r for r in records}
    for email, values in expected.items():
        contact, record = host_index.get(email), zoho_index.get(email)
        tally.lost += int(contact is None) + int(record is None)
        if contact is None or record is None:
            continue
        tally.records_checked += 1
        for name, api_name in COMPARED.items():
            if contact[name] != values[name]:
                tally.mismatches.append(f"{email} host {name}={contact[name]!r}")
            if record.get(api_name) != values[name]:
                tally.mismatches.append(f"{email} zoho {api_name}={record.get(api_name)!r}")
        if contact["vip"] != values["vip"]:
            tally.mismatches.append(f"{email} host vip={contact['vip']}")
        if bool(record.get("VIP")) != values["vip"]:
            tally.mismatches.append(f"{email} zoho VIP={record.get('VIP')}")
    return tally


def moved(report: RunReport) -> int:
    return sum(report.counts.get(key, 0) for key in _MOVES)


def last_run(synced: Synced) -> Run:
    with synced.host.app.app_context():
        session = synced.host.db.session
        run = session.scalars(sa.select(Run).order_by(Run.id.desc()).limit(1)).one()
        session.expunge(run)
        return run


def record_errors(synced: Synced, run_id: int) -> list[str]:
    """The reasons (with Zoho's code) of the record errors a run wrote to the history."""
    with synced.host.app.app_context():
        rows = synced.host.db.session.scalars(
            sa.select(RecordHistory).where(
                RecordHistory.run_id == run_id, RecordHistory.action == "error"
            )
        ).all()
        return [f"{row.error_code or ''} {row.reason or ''}".strip() for row in rows]


def retry_failed_records(synced: Synced) -> int:
    """What the History page's Retry button does, for every unresolved record error."""
    with synced.host.app.app_context():
        session = synced.host.db.session
        errors = session.scalars(
            sa.select(RecordHistory).where(
                RecordHistory.action == "error", RecordHistory.resolved_at.is_(None)
            )
        ).all()
        ledger = Ledger(session, get_settings(session))
        contacts = {error.contact_id for error in errors if error.contact_id}
        for contact_id in contacts:
            ledger.requeue_contact(contact_id)
        for error in errors:
            error.resolved_at = datetime.now(timezone.utc)
        session.commit()
        return len(contacts)


@dataclass
class World:
    """Both sides of one scenario and what they should converge to."""

    synced: Synced
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    host_ids: dict[str, int] = field(default_factory=dict)
    zoho_ids: dict[str, str] = field(default_factory=dict)
    serial: int = 0

    # -- making records --------------------------------------------------------------------

    def _values(self, first: str, last: str, phone: str | None, vip: bool) -> dict[str, Any]:
        return {"first_name": first, "last_name": last, "phone": phone, "vip": vip}

    def add_host(self, count: int, *, vip_every: int = 3) -> list[str]:
        """``count`` new host contacts, committed together (as an import would)."""
        host = self.synced.host
        made = []
        with host.app.app_context():
            session = host.db.session
            vip = session.scalar(host.db.select(host.Group).where(host.Group.name == "VIP"))
            for _ in range(count):
                self.serial += 1
                email = f"host{self.serial}@example.org"
                values = self._values(
                    f"H{self.serial}",
                    "Host",
                    f"+1 555 {self.serial:04d}",
                    self.serial % vip_every == 0,
                )
                contact = host.Contact(
                    email=email,
                    first_name=values["first_name"],
                    last_name=values["last_name"],
                    phone=values["phone"],
                )
                contact.groups = [vip] if values["vip"] else []
                session.add(contact)
                self.expected[email] = values
                made.append((email, contact))
            session.commit()
            for email, contact in made:
                self.host_ids[email] = contact.id
        return [email for email, _ in made]

    def add_zoho(self, count: int) -> list[str]:
        emails = []
        for _ in range(count):
            self.serial += 1
            email = f"zoho{self.serial}@example.org"
            values = self._values(
                f"Z{self.serial}", "Zoho", f"+44 20 {self.serial:04d}", self.serial % 2 == 0
            )
            self.zoho_ids[email] = self.synced.zoho.create_record(
                "Leads",
                {
                    "Email": email,
                    "First_Name": values["first_name"],
                    "Last_Name": values["last_name"],
                    "Phone": values["phone"],
                    "VIP": values["vip"],
                },
            )["id"]
            self.expected[email] = values
            emails.append(email)
        return emails

    def generate_zoho(self, count: int) -> None:
        """Many quick Zoho records (for paging), as the sandbox's generator names them."""
        start = self.serial + 1
        ids = self.synced.zoho.generate_records("Leads", count, start=start)
        for offset, zoho_id in enumerate(ids):
            number = start + offset
            email = f"person{number:05d}@example.test"
            self.zoho_ids[email] = zoho_id
            self.expected[email] = self._values("Test", f"Person {number:05d}", None, False)
        self.serial += count

    # -- syncing ---------------------------------------------------------------------------

    def learn_ids(self) -> None:
        """After a clean sync every record exists on both sides: note both ids."""
        for contact in host_rows(self.synced):
            self.host_ids[(contact["email"] or "").lower()] = contact["id"]
        for record in self.synced.zoho.records("Leads"):
            self.zoho_ids[(record.get("Email") or "").lower()] = record["id"]

    def sync_clean(self, **options: Any) -> RunReport:
        report = self.synced.sync(**options)
        assert report.status == "succeeded", (report.status, report.message)
        self.learn_ids()
        return report

    def churn(self) -> None:
        """Edits, deletions and creations on both sides, none of them conflicting."""
        alive = sorted(self.expected)
        host_side = [e for e in alive if e in self.host_ids]
        zoho_side = [e for e in alive if e in self.zoho_ids]
        for index, email in enumerate(host_side[:4]):
            phone = f"+61 2 {self.serial:04d} {index}"
            self.synced.edit_contact(self.host_ids[email], phone=phone)
            self.expected[email]["phone"] = phone
        for email in host_side[4:6]:
            vip = not self.expected[email]["vip"]
            self.synced.edit_contact(self.host_ids[email], groups=["VIP"] if vip else [])
            self.expected[email]["vip"] = vip
        for index, email in enumerate(zoho_side[-4:]):
            first = f"Edited{index}"
            self.synced.zoho.update_record("Leads", self.zoho_ids[email], {"First_Name": first})
            self.expected[email]["first_name"] = first
        if len(host_side) > 8:
            gone = host_side[6]
            self.synced.delete_contact(self.host_ids[gone])
            self._forget(gone)
        if len(zoho_side) > 8:
            gone = zoho_side[-5]
            self.synced.zoho.delete_record("Leads", self.zoho_ids[gone])
            self._forget(gone)
        self.add_host(2)
        self.add_zoho(2)

    def _forget(self, email: str) -> None:
        self.expected.pop(email)
        self.deleted.add(email)

    def quiesce(self, *, max_syncs: int = 5) -> list[RunReport]:
        """Faults off, then sync until a run succeeds and moves nothing."""
        self.synced.zoho.faults(clear=True)
        reports = []
        for _ in range(max_syncs):
            report = self.synced.sync()
            reports.append(report)
            if report.status == "succeeded" and moved(report) == 0:
                return reports
        raise AssertionError(
            "no quiet sync after the faults cleared: "
            + "; ".join(f"{r.status} {r.message or ''} {r.counts}" for r in reports)
        )

    def tally(self, result: ScenarioResult) -> Tally:
        found = compare(self.synced, self.expected, self.deleted)
        found.fill(result)
        return found
