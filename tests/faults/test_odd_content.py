"""Odd Zoho content: it imports without a crash, round-trips unchanged where the host column
allows it, fails alone with a clear per-record reason where it cannot, and shows escaped on
the admin pages (History, a run, a contact's history, the Synchronise plan).

The admin set-up is the web suite's ``connected_admin`` (a host app with the pages, connected
to the sandbox). Shapes a real Zoho account would not let us store (objects where a string
belongs, nulls in required fields) are fed through the sandbox's scripted reply for the
listing, on top of real records, so the next real listing can show whether the damage heals.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import RecordHistory, Run
from flask_zoho_sync.preferences import add_default_mappings, get_settings, set_field_map
from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.sync.context import RunReport
from tests.faults.report import ScenarioResult
from tests.web.conftest import (  # noqa: F401  (fixtures)
    Admin,
    connected_admin,
    make_admin,
    sandbox_admin,
)

pytestmark = pytest.mark.redis

#: Values that break naive HTML, CSV or spreadsheet handling, and scripts beyond Latin.
ODD_NAMES = {
    "emoji": "Zoë 🦄🏳️‍🌈",
    "arabic (rtl)": "مريم العربية",
    "hebrew with marks (rtl)": "שָׁלוֹם",
    "rtl override": "\u202eevil\u202c",
    "script tag": "<script>alert(1)</script>",
    "attribute breaker": '"><img src=x onerror=alert(1)>',
    "quotes": 'O\'Brien "Bob"',
    "csv formula": "=cmd|' /C calc'!A0",
    "csv plus formula": "+SUM(A1:A9)",
    "comma and newline": "Smith, Jr.\nSecond line",
    "ampersand entity": "&amp; &lt;b&gt;",
    "zero width": "Ann\u200bLee",
}

#: Markers that must never reach a page unescaped.
RAW_HTML = ("<script>alert(1)</script>", "<img src=x onerror=alert(1)>")


def _fit(value: str, limit: int) -> str:
    return value[:limit]


@pytest.fixture
def site(connected_admin: Admin, zoho_sandbox: SandboxHandle) -> Admin:  # noqa: F811
    """Connected, Leads, default mappings, Description mapped to the host's company."""
    host = connected_admin.host
    with host.app.app_context():
        session = host.db.session
        get_settings(session).module = "Leads"
        add_default_mappings(session, connected_admin.state.adapter, "Leads")
        set_field_map(session, kind="field", host_key="company", zoho_field="Description")
        session.commit()
    return connected_admin


def _sync(site: Admin, **options: Any) -> RunReport:
    with site.host.app.app_context():
        return site.state.run_sync(**options)


def _contacts(site: Admin) -> dict[str, dict[str, Any]]:
    with site.host.app.app_context():
        rows = site.host.db.session.scalars(sa.select(site.host.Contact)).all()
        return {
            (c.email or "").lower(): {
                "id": c.id,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "phone": c.phone,
                "company": c.company,
            }
            for c in rows
        }


def _errors(site: Admin) -> list[RecordHistory]:
    with site.host.app.app_context():
        session = site.host.db.session
        rows = session.scalars(sa.select(RecordHistory).where(RecordHistory.action == "error"))
        found = list(rows)
        for row in found:
            session.expunge(row)
        return found


def _pages_escape(site: Admin, contact_ids: list[int]) -> int:
    """Every page that shows record values, checked for raw markup; returns pages read."""
    with site.host.app.app_context():
        run_ids = site.host.db.session.scalars(sa.select(Run.id)).all()
    paths = ["/history", *(f"/history/runs/{run_id}" for run_id in run_ids)]
    paths += [f"/history/contact/{contact_id}" for contact_id in contact_ids]
    for path in paths:
        text = site.text(path)
        for marker in RAW_HTML:
            assert marker not in text, f"{path} shows {marker!r} unescaped"
    plan = site.plan({"mode": "all"})
    assert plan.status_code == 200
    text = plan.get_data(as_text=True)
    for marker in RAW_HTML:
        assert marker not in text, f"the plan shows {marker!r} unescaped"
    return len(paths) + 1


@pytest.mark.fault_category("odd content: names both ways")
@pytest.mark.parametrize("origin", ["zoho", "host"])
def test_odd_names_round_trip_and_render_escaped(
    site: Admin, zoho_sandbox: SandboxHandle, fault_scenario: ScenarioResult, origin: str
) -> None:
    emails = {}
    for number, (_label, value) in enumerate(sorted(ODD_NAMES.items())):
        email = f"odd{number}@example.org"
        emails[email] = value
        if origin == "zoho":
            zoho_sandbox.create_record(
                "Leads",
                {"First_Name": _fit(value, 40), "Last_Name": _fit(value, 80), "Email": email},
            )
        else:
            with site.host.app.app_context():
                session = site.host.db.session
                session.add(
                    site.host.Contact(
                        first_name=_fit(value, 40), last_name=_fit(value, 80), email=email
                    )
                )
                session.commit()
    fault_scenario.inputs = len(emails)
    first = _sync(site)
    assert first.status == "succeeded", first.message
    # The host edits something else; the odd names must come through a second pass intact.
    contacts = _contacts(site)
    with site.host.app.app_context():
        session = site.host.db.session
        for email in emails:
            session.get(site.host.Contact, contacts[email]["id"]).phone = "+1 555 0100"
        session.commit()
    second = _sync(site)
    assert second.status == "succeeded", second.message
    contacts = _contacts(site)
    leads = {r["Email"]: r for r in zoho_sandbox.records("Leads")}
    for email, value in emails.items():
        contact, lead = contacts.get(email), leads.get(email)
        fault_scenario.lost += int(contact is None) + int(lead is None)
        if contact is None or lead is None:
            continue
        fault_scenario.records_checked += 1
        assert contact["first_name"] == lead["First_Name"] == _fit(value, 40), email
        assert contact["last_name"] == lead["Last_Name"] == _fit(value, 80), email
        assert lead["Phone"] == "+1 555 0100"
    assert len(zoho_sandbox.records("Leads")) == len(emails)
    assert not _errors(site)
    pages = _pages_escape(site, [c["id"] for c in contacts.values()])
    fault_scenario.note = f"{pages} admin pages checked for escaping"


@pytest.mark.fault_category("odd content: 32,000-character text")
def test_a_32000_character_description_is_cut_for_the_host_and_kept_in_zoho(
    site: Admin, zoho_sandbox: SandboxHandle, fault_scenario: ScenarioResult
) -> None:
    long_text = ('<b>Notes</b>, "quoted"\n=1+1 ' * 1200)[:32000]
    assert len(long_text) == 32000
    record = zoho_sandbox.create_record(
        "Leads", {"Last_Name": "Long", "Email": "long@example.org", "Description": long_text}
    )
    fault_scenario.inputs = 1
    for _ in range(3):
        report = _sync(site)
        assert report.status == "succeeded", report.message
    contact = _contacts(site)["long@example.org"]
    # The host column holds 120 characters: the start arrives, the rest stays in Zoho.
    assert contact["company"] == long_text[:120].rstrip()
    kept = zoho_sandbox.record("Leads", record["id"])["Description"]
    assert kept == long_text, "the cut copy must not be written back over Zoho's full text"
    with site.host.app.app_context():
        reasons = site.host.db.session.scalars(sa.select(RecordHistory.reason)).all()
        changes = site.host.db.session.scalars(sa.select(RecordHistory.changes)).all()
    shown = " ".join(str(part) for part in (*reasons, *changes))
    assert long_text not in shown, "the history keeps a 32,000-character value verbatim"
    # The cut is not silent: the import's history entry says what was cut.
    assert "company: value cut from 32000 to 120 characters" in shown, shown[:500]
    fault_scenario.records_checked = 1
    _pages_escape(site, [contact["id"]])


def _scripted_listing(zoho: SandboxHandle, records: list[dict[str, Any]]) -> None:
    """Answer the pull's next read of records (a COQL query) with ``records`` (the deleted
    listing stays real)."""
    zoho.faults(
        fail_next=[
            {
                "status": 200,
                "body": {
                    "data": records,
                    "info": {"more_records": False, "count": len(records)},
                },
                "method": "POST",
                "path_contains": "/coql",
            }
        ]
    )


ODD_SHAPES: dict[str, dict[str, Any]] = {
    "object for a string": {"First_Name": {"name": "Looked Up", "id": "4876876000000001"}},
    "list for a string": {"First_Name": ["a", "b"]},
    "number for a string": {"First_Name": 12345},
    "null first name": {"First_Name": None},
    "null last name": {"Last_Name": None},
    "null email": {"Email": None},
    "null checkbox": {"Email_Opt_Out": None},
    "string for a checkbox": {"Email_Opt_Out": "yes"},
    "unknown fields": {"Zzz_Unknown__c": {"deep": [1, {"x": None}]}, "$weird": True},
    "phone too long for the host": {"Phone": "+1 555 0100 " * 6},
    "garbled modified time": {"Modified_Time": "yesterday-ish"},
    "html in a name": {"First_Name": "<script>alert(1)</script>"},
}


@pytest.mark.fault_category("odd content: shapes Zoho should not send")
def test_odd_shapes_import_or_fail_alone_then_heal(
    site: Admin, zoho_sandbox: SandboxHandle, fault_scenario: ScenarioResult
) -> None:
    """Each odd record either imports a sane value or fails alone with a reason naming the
    field; the well-formed record beside them imports; the next real listing heals the rest."""
    real = {}
    for number, label in enumerate(sorted(ODD_SHAPES)):
        real[label] = zoho_sandbox.create_record(
            "Leads",
            {"First_Name": f"Real{number}", "Last_Name": "Shape", "Email": f"s{number}@ex.org"},
        )
    plain = zoho_sandbox.create_record(
        "Leads", {"First_Name": "Plain", "Last_Name": "Record", "Email": "plain@example.org"}
    )
    listed = [zoho_sandbox.record("Leads", plain["id"])]
    for label, odd in sorted(ODD_SHAPES.items()):
        listed.append({**zoho_sandbox.record("Leads", real[label]["id"]), **odd})
    _scripted_listing(zoho_sandbox, listed)
    fault_scenario.inputs = len(ODD_SHAPES)

    report = _sync(site)
    assert report.status in ("succeeded", "partial"), report.message
    assert "unexpected error" not in (report.message or "")
    contacts = _contacts(site)
    assert contacts["plain@example.org"]["first_name"] == "Plain"
    errors = _errors(site)
    for error in errors:
        assert error.reason and error.error_code, "a record error must say what and why"
    too_long = [e for e in errors if e.reason and "phone" in e.reason.lower()]
    assert too_long, [e.reason for e in errors]
    assert "30 characters" in (too_long[0].reason or "")
    _pages_escape(site, [c["id"] for c in contacts.values()])

    # The real listing now: every record ends up equal on both sides.
    for _ in range(3):
        healed = _sync(site, mode="all")
        assert healed.status in ("succeeded", "partial"), healed.message
    contacts = _contacts(site)
    leads = {r["Email"].lower(): r for r in zoho_sandbox.records("Leads")}
    for email, lead in leads.items():
        contact = contacts.get(email)
        fault_scenario.lost += int(contact is None)
        if contact is None:
            continue
        fault_scenario.records_checked += 1
        assert contact["first_name"] == lead["First_Name"], email
        assert contact["last_name"] == lead["Last_Name"], email
    fault_scenario.duplicated = len(zoho_sandbox.records("Leads")) - len(leads)
    fault_scenario.note = f"{len(errors)} per-record errors on the odd listing"
    assert fault_scenario.lost == 0
