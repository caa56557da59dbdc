"""A large first sync through Zoho's bulk APIs: same outcome as REST, far fewer calls.

The first page is read by COQL (the default pull) or by REST (``by_rest``: COQL off);
either way a full one leads to a count, and an org at the threshold to an export.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import Link, RecordHistory
from flask_zoho_sync.zoho.bulk import BulkClient
from flask_zoho_sync.zoho.client import ZohoClient
from tests.engine.conftest import Synced

#: Small enough that a few hundred records count as "large" here.
THRESHOLD = 20
CONFIG = {
    "ZOHO_SYNC_BULK_THRESHOLD": THRESHOLD,
    "ZOHO_SYNC_BULK_POLL_INTERVAL": 0.01,
    "ZOHO_SYNC_MAX_CONCURRENCY": 2,
}
COQL = "POST /coql"
REST = "GET /Leads"
COUNT = "GET /Leads/actions/count"
#: A test about the first sync's REST path: the pull does not read by COQL.
by_rest = pytest.mark.parametrize(
    "synced_config", [{**CONFIG, "ZOHO_SYNC_PULL_WITH_COQL": False}], ids=["rest"]
)


@pytest.fixture
def synced_config() -> dict[str, Any]:
    return dict(CONFIG)


@pytest.fixture(autouse=True)
def coql_pages_of_200(monkeypatch: pytest.MonkeyPatch) -> None:
    """COQL pages of 200 (Zoho's: 2,000), so a few hundred records fill a first page."""
    monkeypatch.setattr(ZohoClient, "coql_page_size", 200)


def links(synced: Synced) -> list[tuple[str, str]]:
    with synced.host.app.app_context():
        rows = synced.host.db.session.execute(sa.select(Link.contact_id, Link.zoho_id)).all()
        return [(str(contact_id), zoho_id) for contact_id, zoho_id in rows]


@by_rest
def test_a_large_first_sync_reads_and_writes_in_bulk_without_duplicates(synced: Synced) -> None:
    synced.zoho.generate_records("Leads", 450)
    both = synced.add_contact(last_name="Person 00007", email="person00007@example.test")
    host_ids = [
        synced.add_contact(first_name="Host", last_name=f"H{n}", email=f"h{n}@example.org")
        for n in range(40)
    ]
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message

    calls = synced.calls()
    assert calls["GET /Leads"] == 1  # one REST page, then the export of the rest
    assert calls["GET /Leads/actions/count"] == 1  # asked once, after a full first page
    assert calls["POST /bulk/read"] == 1
    assert calls["POST /bulk/write"] == 2  # new host contacts; Contact Ids of imported ones
    assert "POST /Leads/upsert" not in calls and "PUT /Leads" not in calls
    assert report.counts["bulk.write_jobs"] == 2

    leads = synced.leads()
    contacts = synced.contacts()
    assert len(leads) == len(synced.zoho.records("Leads")) == 490  # 450 + 40, no duplicates
    assert len(contacts) == 490  # 449 imported + the matched one + 40 host contacts
    pairs = links(synced)
    assert len(pairs) == len({c for c, _ in pairs}) == len({z for _, z in pairs}) == 490
    by_zoho = {zoho_id: contact_id for contact_id, zoho_id in pairs}
    for email, lead in leads.items():
        assert lead["Contact_Id"] == by_zoho[lead["id"]] == str(contacts[email]["id"])
    assert contacts["person00007@example.test"]["id"] == both
    assert {str(i) for i in host_ids} <= set(by_zoho.values())


def test_after_a_bulk_first_sync_the_next_sync_writes_nothing(synced: Synced) -> None:
    synced.zoho.generate_records("Leads", 250)
    for n in range(25):
        synced.add_contact(last_name=f"H{n}", email=f"h{n}@example.org", groups=["VIP"])
    assert synced.sync(mode="all").status == "succeeded"
    before = synced.calls()
    report = synced.sync()
    after = synced.calls()
    reads = ("GET", "POST /coql")  # a COQL query is a POST that writes nothing
    writes = {k: after.get(k, 0) - before.get(k, 0) for k in after if not k.startswith(reads)}
    assert not any(writes.values()), writes
    assert report.counts.get("to_host.update", 0) == 0
    assert all(lead["VIP"] for lead in synced.leads().values() if lead["Email"].startswith("h"))


def test_rows_zoho_refuses_in_a_bulk_write_land_in_the_history(synced: Synced) -> None:
    synced.zoho.add_custom_field(
        "Leads", api_name="Badge", field_label="Badge", data_type="text", length=20, unique=True
    )
    with synced.host.app.app_context():
        from flask_zoho_sync.preferences import set_field_map

        set_field_map(synced.host.db.session, kind="field", host_key="company", zoho_field="Badge")
        synced.host.db.session.commit()
    for n in range(THRESHOLD + 5):
        synced.add_contact(last_name=f"H{n}", email=f"h{n}@example.org", company=f"B{n}")
    clash = synced.add_contact(last_name="Clash", email="clash@example.org", company="B3")
    report = synced.sync(mode="all")
    assert report.status == "partial"
    assert report.message is not None
    assert report.message.startswith("1 record could not be synced (DUPLICATE_DATA x1)")
    assert synced.calls()["POST /bulk/write"] == 1
    [error] = [c for c in report.changes if c.action == "error"]
    assert error.contact_id == str(clash)
    assert error.error_code == "DUPLICATE_DATA"
    assert "Badge" in (error.reason or "")
    with synced.host.app.app_context():
        stored = synced.host.db.session.scalar(
            sa.select(RecordHistory).where(RecordHistory.action == "error")
        )
        assert stored.contact_id == str(clash) and stored.error_code == "DUPLICATE_DATA"
    assert len(synced.zoho.records("Leads")) == THRESHOLD + 5
    assert str(clash) not in {contact_id for contact_id, _ in links(synced)}


@by_rest
def test_an_org_below_the_threshold_pays_one_count_and_stays_on_rest(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synced.state, "config", replace(synced.state.config, bulk_threshold=500))
    synced.zoho.generate_records("Leads", 450)
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "succeeded", report.message
    assert report.counts["to_host.create"] == 450
    calls = synced.calls()
    assert calls["GET /Leads"] == 3  # every page through REST, as without bulk
    assert calls["GET /Leads/actions/count"] == 1
    assert not any(key.startswith("POST /bulk") for key in calls)


@by_rest
def test_an_org_that_fits_one_page_is_not_counted(synced: Synced) -> None:
    synced.zoho.generate_records("Leads", 150)
    report = synced.sync(mode="all", direction="pull")
    assert report.counts["to_host.create"] == 150
    calls = synced.calls()
    assert calls["GET /Leads"] == 1
    assert "GET /Leads/actions/count" not in calls
    assert not any(key.startswith("POST /bulk") for key in calls)


def test_a_small_first_sync_stays_on_rest(synced: Synced) -> None:
    synced.zoho.generate_records("Leads", 5)
    for n in range(5):
        synced.add_contact(last_name=f"H{n}", email=f"h{n}@example.org")
    assert synced.sync(mode="all").status == "succeeded"
    calls = synced.calls()
    assert not any(key.startswith(("POST /bulk", "POST /upload")) for key in calls)
    assert calls["POST /Leads/upsert"] == 1


@by_rest
def test_a_plan_of_a_large_first_sync_reads_as_the_run_does_and_writes_nothing(
    synced: Synced,
) -> None:
    synced.zoho.generate_records("Leads", 650)
    synced.add_contact(last_name="Host", email="host@example.org")
    report = synced.sync(mode="all", dry_run=True)
    assert report.status == "succeeded", report.message
    assert report.counts["to_host.create"] == 650
    assert report.counts["to_zoho.create"] == 1
    calls = synced.calls()
    # Through REST the plan alone cost four listing pages, and a page per 200 records
    # more as the org grows; an export costs the same few calls at any size.
    assert calls["GET /Leads"] == 1
    assert calls["GET /Leads/actions/count"] == 1
    assert calls["POST /bulk/read"] == 1
    assert not any(key.startswith(("POST /bulk/write", "POST /upload")) for key in calls)
    assert len(synced.contacts()) == 1
    assert len(synced.zoho.records("Leads")) == 650
    with synced.host.app.app_context():
        assert synced.host.db.session.scalar(sa.select(sa.func.count()).select_from(Link)) == 0


def test_a_large_first_sync_by_coql_pays_one_query_then_exports_the_rest(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = sorted(synced.zoho.generate_records("Leads", 450), key=int)
    edited = ids[5]  # COQL reads in id order: on the first page, merged before the export
    both = synced.add_contact(last_name="Person 00007", email="person00007@example.test")
    host_ids = [
        synced.add_contact(first_name="Host", last_name=f"H{n}", email=f"h{n}@example.org")
        for n in range(40)
    ]
    export = BulkClient.iter_rows

    def edited_before_the_export(bulk: BulkClient, *args: Any, **kwargs: Any) -> Iterator[Any]:
        synced.zoho.advance_clock(60)  # a later second: a new Modified_Time
        synced.zoho.update_record("Leads", edited, {"Phone": "+1 555 0142"})
        yield from export(bulk, *args, **kwargs)

    monkeypatch.setattr(BulkClient, "iter_rows", edited_before_the_export)
    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message

    calls = synced.calls()
    assert calls[COQL] == 1  # one page of 200, then the export of everything
    assert calls[COUNT] == 1
    assert calls["POST /bulk/read"] == 1
    assert REST not in calls
    # The export's rows past the first page, and the one edited since it was read; the
    # other 199 of the page were left out as the same versions.
    assert report.counts["bulk.read_records"] == 250 + 1
    leads = synced.leads()
    contacts = synced.contacts()
    assert len(leads) == len(synced.zoho.records("Leads")) == 490  # 450 + 40, no duplicates
    assert len(contacts) == 490
    pairs = links(synced)
    assert len(pairs) == len({c for c, _ in pairs}) == len({z for _, z in pairs}) == 490
    by_zoho = {zoho_id: contact_id for contact_id, zoho_id in pairs}
    for email, lead in leads.items():
        assert lead["Contact_Id"] == by_zoho[lead["id"]] == str(contacts[email]["id"])
    assert contacts["person00007@example.test"]["id"] == both
    assert {str(i) for i in host_ids} <= set(by_zoho.values())
    [email] = [email for email, lead in leads.items() if lead["id"] == edited]
    assert contacts[email]["phone"] == "+1 555 0142"


def test_an_org_below_the_threshold_pays_one_count_and_goes_on_by_coql(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synced.state, "config", replace(synced.state.config, bulk_threshold=500))
    synced.zoho.generate_records("Leads", 450)
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "succeeded", report.message
    assert report.counts["to_host.create"] == 450
    assert len(synced.contacts()) == 450
    calls = synced.calls()
    assert calls[COQL] == 3  # the first page alone, then the last two read at once
    assert calls[COUNT] == 1
    assert REST not in calls
    assert not any(key.startswith("POST /bulk") for key in calls)


def test_an_org_that_fits_one_coql_page_is_not_counted(synced: Synced) -> None:
    synced.zoho.generate_records("Leads", 150)
    report = synced.sync(mode="all", direction="pull")
    assert report.counts["to_host.create"] == 150
    calls = synced.calls()
    assert calls[COQL] == 1
    assert COUNT not in calls and REST not in calls
    assert not any(key.startswith("POST /bulk") for key in calls)


@pytest.mark.parametrize(
    ("status", "code"), [(401, "OAUTH_SCOPE_MISMATCH"), (400, "INVALID_QUERY")]
)
def test_a_refused_coql_query_leaves_the_first_sync_on_its_rest_path(
    synced: Synced, status: int, code: str
) -> None:
    synced.zoho.generate_records("Leads", 450)
    refusal = {"code": code, "details": {}, "message": "refused", "status": "error"}
    synced.zoho.faults(fail_next=[{"path_contains": "/coql", "status": status, "body": refusal}])
    report = synced.sync(mode="all", direction="pull")
    assert report.status == "succeeded", report.message
    calls = synced.calls()
    assert calls[COQL] == 1  # refused, not repeated
    assert calls[REST] == 1  # a REST page, counted, then the export of the rest
    assert calls[COUNT] == 1
    assert calls["POST /bulk/read"] == 1
    assert len(synced.contacts()) == 450


def test_a_plan_by_coql_reads_as_the_run_does(synced: Synced) -> None:
    synced.zoho.generate_records("Leads", 650)
    synced.add_contact(last_name="Host", email="host@example.org")
    plan = synced.sync(mode="all", dry_run=True)
    assert plan.status == "succeeded", plan.message
    assert plan.counts["to_host.create"] == 650  # the first page's records listed once
    assert plan.counts["to_zoho.create"] == 1
    planned = synced.calls()
    assert planned[COQL] == 1 and planned[COUNT] == 1 and planned["POST /bulk/read"] == 1
    assert REST not in planned
    assert not any(key.startswith(("POST /bulk/write", "POST /upload")) for key in planned)
    assert len(synced.contacts()) == 1
    with synced.host.app.app_context():
        assert synced.host.db.session.scalar(sa.select(sa.func.count()).select_from(Link)) == 0

    report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    assert report.counts["to_host.create"] == plan.counts["to_host.create"]
    ran = {key: count - planned.get(key, 0) for key, count in synced.calls().items()}
    assert ran[COQL] == 1 and ran[COUNT] == 1 and ran["POST /bulk/read"] == 1


def test_the_plan_of_a_bulk_first_sync_prices_the_jobs_the_run_makes(synced: Synced) -> None:
    synced.zoho.generate_records("Leads", 450)
    for n in range(40):
        synced.add_contact(last_name=f"H{n}", email=f"h{n}@example.org")
    plan = synced.sync(mode="all", dry_run=True)
    assert plan.estimate is not None
    planned_calls, planned_credits = plan.estimate
    before = synced.zoho.stats()
    report = synced.sync(mode="all")
    after = synced.zoho.stats()
    assert report.status == "succeeded", report.message
    calls = sum(after["calls"].values()) - sum(before["calls"].values())
    credits = after["total_credits"] - before["total_credits"]
    # Two write jobs at 500 credits each: priced as REST writes the plan said about 60.
    assert credits > 1000
    assert abs(planned_credits - credits) <= 0.05 * credits, (plan.estimate, calls, credits)
    assert abs(planned_calls - calls) <= 3, (plan.estimate, calls, credits)


def export_with_budget(synced: Synced, credits: int) -> Any:
    """A first sync of enough host contacts for one write job, under a daily budget."""
    synced.state.config = replace(synced.state.config, daily_credit_budget=credits)
    for n in range(THRESHOLD + 5):
        synced.add_contact(last_name=f"H{n}", email=f"h{n}@example.org")
    return synced.sync(mode="all")


def test_a_budget_too_small_for_any_bulk_job_sends_the_writes_through_rest(
    synced: Synced,
) -> None:
    report = export_with_budget(synced, 400)
    # A 500-credit job would never fit: pausing for it would stop the sync for good.
    assert report.status == "succeeded", report.message
    calls = synced.calls()
    assert "POST /bulk/write" not in calls and "POST /upload" not in calls
    assert calls["POST /Leads/upsert"] == 1
    assert len(synced.leads()) == THRESHOLD + 5


def test_a_bulk_job_the_budget_cannot_pay_today_pauses_before_its_upload(
    synced: Synced,
) -> None:
    report = export_with_budget(synced, 506)
    # The run's reads took a few credits, so the job (505 in all) no longer fits today.
    assert report.status == "paused", report.message
    assert "Bulk Write job needs 505" in (report.message or "")
    calls = synced.calls()
    assert "POST /upload" not in calls and "POST /bulk/write" not in calls
    assert synced.zoho.stats()["total_credits"] <= 506
    assert synced.leads() == {}
