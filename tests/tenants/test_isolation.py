"""Tenants on one host: each sees and changes only its own sync, through every door
(pages, CLI, jobs, capture, the tick, notifications), guessed ids included."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from rq import Queue

from flask_zoho_sync import jobs
from flask_zoho_sync.models import Incident, Link, OutboxBatch, Run, SyncSettings
from flask_zoho_sync.preferences import add_default_mappings, get_settings
from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.tenancy import ALL_TENANTS, tenant_context
from flask_zoho_sync.workers import SimpleSyncWorker
from tests.tenants.conftest import PREFIX, SITE_HEADER, TenantHost, store_connection

pytestmark = pytest.mark.redis


def connect(host: TenantHost, site: str, sandbox: SandboxHandle, module: str) -> None:
    """``site`` connected to the sandbox with its own refresh token, on ``module``."""
    with host.as_tenant(site):
        grant = sandbox.mint_refresh_token()
        host.state.connect_with_refresh_token(grant["refresh_token"], sandbox.accounts_server)
        session = host.db.session
        settings = get_settings(session)
        settings.module = module
        add_default_mappings(session, host.state.adapter, module)
        session.commit()


def work_queue(host: TenantHost) -> None:
    with host.app.app_context():
        queue = jobs.queue_for(host.state)
        SimpleSyncWorker([queue], connection=host.state.redis()).work(
            burst=True, with_scheduler=True
        )


def emails(records: list[dict[str, Any]]) -> set[str]:
    return {str(record.get("Email")) for record in records}


def test_each_tenant_syncs_only_its_own_contacts_through_its_own_jobs(
    sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle
) -> None:
    host = sandbox_tenant_host
    connect(host, "north", zoho_sandbox, "Leads")
    connect(host, "south", zoho_sandbox, "Contacts")
    for n in range(2):
        host.add_contact("north", last_name=f"N{n}", email=f"n{n}@north.test")
    for n in range(3):
        host.add_contact("south", last_name=f"S{n}", email=f"s{n}@south.test")
    zoho_sandbox.create_record("Leads", {"Last_Name": "Zed", "Email": "zed@zoho.test"})

    for site in ("north", "south"):
        with host.as_tenant(site):
            jobs.schedule_sync(host.state, mode="all", trigger="admin")
    work_queue(host)

    assert emails(zoho_sandbox.records("Leads")) == {
        "n0@north.test",
        "n1@north.test",
        "zed@zoho.test",
    }
    assert emails(zoho_sandbox.records("Contacts")) == {
        "s0@south.test",
        "s1@south.test",
        "s2@south.test",
    }
    with host.app.app_context():
        session = host.db.session
        # The Zoho lead came in as a contact of the site that syncs Leads, and only there.
        imported = session.scalars(
            sa.select(host.Contact).where(host.Contact.email == "zed@zoho.test")
        ).all()
        assert [contact.site for contact in imported] == ["north"]
        for site, module, count in (("north", "Leads", 3), ("south", "Contacts", 3)):
            with tenant_context(site):
                links = session.scalars(sa.select(Link)).all()
                assert {link.module for link in links} == {module}
                sites = {session.get(host.Contact, int(link.contact_id)).site for link in links}
                assert sites == {site} and len(links) == count
                runs = session.scalars(sa.select(Run)).all()
                assert [run.status for run in runs] == ["succeeded"]


def test_the_admin_pages_show_and_change_only_the_current_tenants_sync(
    tenant_host: TenantHost,
) -> None:
    host = tenant_host
    store_connection(host, "north", "North Traders")
    store_connection(host, "south", "South Shipping")

    north = host.get("north", "/").get_data(as_text=True)
    assert "North Traders" in north and "South Shipping" not in north
    south = host.get("south", "/").get_data(as_text=True)
    assert "South Shipping" in south and "North Traders" not in south

    answer = host.post(
        "north",
        "/settings",
        {"module": "Leads", "time_zone": "Asia/Tokyo", "conflict_policy": "newest"},
    )
    assert answer.status_code in (200, 302, 303), answer.get_data(as_text=True)[:500]
    with host.app.app_context():
        zones = dict(
            host.db.session.execute(
                sa.select(SyncSettings.tenant_id, SyncSettings.time_zone).execution_options(
                    **{ALL_TENANTS: True}
                )
            ).all()
        )
    assert zones["north"] == "Asia/Tokyo"
    assert zones["south"] != "Asia/Tokyo"


def test_a_run_of_another_tenant_is_not_found_even_by_its_id(tenant_host: TenantHost) -> None:
    host = tenant_host
    store_connection(host, "north", "North Traders")
    store_connection(host, "south", "South Shipping")
    with host.as_tenant("south"):
        run = Run(kind="sync", mode="all", status="succeeded", counts={"to_zoho.create": 4})
        host.db.session.add(run)
        host.db.session.commit()
        run_id = run.id
    assert host.get("south", f"/history/runs/{run_id}").status_code == 200
    assert host.get("north", f"/history/runs/{run_id}").status_code == 404
    assert f"/history/runs/{run_id}" not in host.get("north", "/history").get_data(as_text=True)


def test_the_pages_refuse_a_request_that_names_no_tenant(tenant_host: TenantHost) -> None:
    answer = tenant_host.get(None, "/")
    assert answer.status_code == 403
    assert "No site chosen" in answer.get_data(as_text=True)


def test_the_cli_acts_for_the_tenant_it_is_given(tenant_host: TenantHost) -> None:
    host = tenant_host
    store_connection(host, "north", "North Traders")
    store_connection(host, "south", "South Shipping")
    runner = host.app.test_cli_runner()

    south = runner.invoke(args=["zoho-sync", "--tenant", "south", "status", "--json"])
    assert south.exit_code == 0, south.output
    assert "South Shipping" in south.output and "North Traders" not in south.output

    changed = runner.invoke(
        args=["zoho-sync", "--tenant", "north", "settings", "--timezone", "Asia/Tokyo"]
    )
    assert changed.exit_code == 0, changed.output
    with host.as_tenant("south"):
        assert get_settings(host.db.session).time_zone != "Asia/Tokyo"
    with host.as_tenant("north"):
        assert get_settings(host.db.session).time_zone == "Asia/Tokyo"

    refused = runner.invoke(args=["zoho-sync", "--tenant", "no good!", "status"])
    assert refused.exit_code == 2
    assert "is not a tenant key" in refused.output


def test_a_host_edit_fills_the_outbox_of_the_contacts_own_tenant(
    tenant_host: TenantHost, redis_client: Any
) -> None:
    host = tenant_host
    for site in ("north", "south"):
        store_connection(host, site, f"{site} org")
        with host.as_tenant(site):
            get_settings(host.db.session).auto_sync = True
            host.db.session.commit()
    north_id = host.add_contact("north", last_name="N", email="n@north.test")
    south_id = host.add_contact("south", last_name="S", email="s@south.test")

    # One transaction of "north"'s request edits both (a platform admin, say).
    with host.as_tenant("north"):
        session = host.db.session
        session.get(host.Contact, north_id).company = "North Co"
        session.get(host.Contact, south_id).company = "South Co"
        session.commit()

    with host.app.app_context():
        batches = host.db.session.execute(
            sa.select(OutboxBatch.tenant_id, OutboxBatch.contact_ids)
            .where(OutboxBatch.operation == "upsert")
            .execution_options(**{ALL_TENANTS: True})
        ).all()
    latest: dict[str, list[str]] = {}
    for tenant, contact_ids in batches:
        latest.setdefault(tenant, []).extend(contact_ids)
    assert str(south_id) not in latest["north"] and str(north_id) in latest["north"]
    assert str(north_id) not in latest["south"] and str(south_id) in latest["south"]
    queue = Queue(host.state.config.queue, connection=redis_client)
    scheduled = [queue.fetch_job(job_id) for job_id in queue.scheduled_job_registry.get_job_ids()]
    assert sorted(job.kwargs["tenant"] for job in scheduled) == ["north", "south"]


def test_the_tick_runs_each_tenant_as_itself(tenant_host: TenantHost, redis_client: Any) -> None:
    host = tenant_host
    store_connection(host, "north", "North Traders")
    store_connection(host, "south", "South Shipping")
    with host.as_tenant("south"):
        get_settings(host.db.session).auto_sync = True
        # South's admin ran the first sync by hand, so automatic runs may write.
        host.db.session.add(Run(kind="sync", mode="all", trigger="admin", status="succeeded"))
        host.db.session.commit()

    runner = host.app.test_cli_runner()
    answer = runner.invoke(args=["zoho-sync", "tick"])
    assert answer.exit_code == 0, answer.output
    reports = json.loads(answer.output)["tenants"]
    assert reports["north"]["auto_sync"] is False
    assert reports["south"]["auto_sync"] is True
    queued = Queue(host.state.config.queue, connection=redis_client).jobs
    assert [job.kwargs.get("tenant") for job in queued if job.kwargs.get("mode")] == ["south"]

    only = runner.invoke(args=["zoho-sync", "--tenant", "north", "tick"])
    assert json.loads(only.output)["tenant"] == "north"


def test_a_notification_reaches_the_tenant_whose_channel_and_token_it_carries(
    tenant_host: TenantHost, redis_client: Any
) -> None:
    host = tenant_host
    for site in ("north", "south"):
        store_connection(host, site, f"{site} org")
        with host.as_tenant(site):
            settings = get_settings(host.db.session)
            settings.notify_channel_id = f"10{len(site)}{site == 'south':d}"
            settings.notify_token_encrypted = host.state.vault.encrypt(f"token-{site}")
            host.db.session.commit()
    with host.as_tenant("south"):
        channel = get_settings(host.db.session).notify_channel_id

    def notify(token: str) -> Any:
        body = {
            "channel_id": channel,
            "token": token,
            "ids": ["5001"],
            "module": "Leads",
            "operation": "update",
        }
        return host.client.post(f"{PREFIX}/notify", json=body)

    assert notify("token-north").status_code == 403  # south's channel, north's token
    assert notify("token-south").status_code == 200
    queue = host.state.config.queue
    assert redis_client.smembers(f"zoho_sync:{queue}:tenant:south:notified-ids") == {b"5001"}
    assert not redis_client.exists(f"zoho_sync:{queue}:tenant:north:notified-ids")


def test_a_plan_of_another_tenant_is_gone_whatever_id_is_asked(
    tenant_host: TenantHost, redis_client: Any
) -> None:
    host = tenant_host
    with host.as_tenant("south"):
        job_id = jobs.schedule_plan(host.state, mode="all", plan_changes=None)
        assert jobs.plan_progress(host.state, job_id).status == "waiting"
    with host.as_tenant("north"):
        assert jobs.plan_progress(host.state, job_id).status == "gone"


def test_a_revoked_token_stops_that_tenant_alone_and_says_so(
    sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle
) -> None:
    host = sandbox_tenant_host
    connect(host, "north", zoho_sandbox, "Leads")
    connect(host, "south", zoho_sandbox, "Contacts")
    host.add_contact("north", last_name="N", email="n@north.test")
    host.add_contact("south", last_name="S", email="s@south.test")
    with host.as_tenant("north"):
        north_token = host.state.token_store().load()
    assert north_token is not None
    # North's user removed the app in Zoho: its grant is gone, south's is not.
    revoked = requests.post(
        f"{zoho_sandbox.accounts_server}/oauth/v2/token/revoke",
        params={"token": north_token.refresh_token},
        timeout=10,
    )
    assert revoked.ok
    zoho_sandbox.faults(expire_access_tokens=True)

    for site in ("north", "south"):
        with host.as_tenant(site):
            jobs.schedule_sync(host.state, mode="all", trigger="admin")
    work_queue(host)

    assert emails(zoho_sandbox.records("Contacts")) == {"s@south.test"}
    assert emails(zoho_sandbox.records("Leads")) == set()
    with host.app.app_context():
        session = host.db.session
        # North's run ended before it began (Zoho refused the field list): no run row, an
        # open "connection lost" incident of north's alone.
        for site, runs in (("north", []), ("south", ["succeeded"])):
            with tenant_context(site):
                assert [run.status for run in session.scalars(sa.select(Run))] == runs
                kinds = set(session.scalars(sa.select(Incident.kind)))
                assert ("connection_lost" in kinds) is (site == "north")
    north_page = host.get("north", "/").get_data(as_text=True)
    assert "reconnect" in north_page.lower() or "Reconnect" in north_page
    assert "connection_lost" not in host.get("south", "/").get_data(as_text=True)


def test_a_monitor_names_the_tenant_whose_health_it_reads(
    build_tenant_host: Callable[..., TenantHost],
) -> None:
    host = build_tenant_host(ZOHO_SYNC_HEALTH_TOKEN="monitor-token")
    store_connection(host, "north", "North Traders")
    bearer = {"Authorization": "Bearer monitor-token"}

    def token_state(query: str, headers: dict[str, str]) -> Any:
        answer = host.client.get(f"/admin/zoho/health{query}", headers=headers)
        return answer.status_code, (answer.get_json() or {}).get("token_state")

    assert token_state("?tenant=north", bearer)[1] == "ok"
    assert token_state("?tenant=south", bearer)[1] == "not_connected"
    # An admin signed in to south reads south's, whatever the query names.
    assert token_state("?tenant=north", {SITE_HEADER: "south"})[0] == 403
    assert token_state("", {SITE_HEADER: "south"})[1] == "not_connected"
    assert token_state("", {SITE_HEADER: "north"})[1] == "ok"
    assert token_state("?tenant=no%20good", bearer)[0] == 400


def test_disconnecting_one_tenant_revokes_its_token_and_leaves_the_others_connected(
    sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle
) -> None:
    host = sandbox_tenant_host
    connect(host, "north", zoho_sandbox, "Leads")
    connect(host, "south", zoho_sandbox, "Contacts")
    with host.as_tenant("north"):
        north_token = host.state.token_store().load()
    assert north_token is not None

    answer = host.post("north", "/disconnect")
    assert answer.status_code in (200, 302, 303)

    refreshed = requests.post(
        f"{zoho_sandbox.accounts_server}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": north_token.refresh_token,
            "client_id": zoho_sandbox.client_id,
            "client_secret": zoho_sandbox.client_secret,
        },
        timeout=10,
    )
    assert refreshed.json().get("error") == "invalid_code"  # revoked at Zoho
    with host.as_tenant("north"):
        assert host.state.token_store().load() is None
    host.add_contact("south", last_name="S", email="s@south.test")
    with host.as_tenant("south"):
        jobs.schedule_sync(host.state, mode="all", trigger="admin")
    work_queue(host)
    assert emails(zoho_sandbox.records("Contacts")) == {"s@south.test"}


def test_each_tenant_maps_and_joins_only_its_own_groups(tenant_host: TenantHost) -> None:
    host = tenant_host
    with host.app.app_context():
        session = host.db.session
        session.add_all(
            [
                host.Group(site="north", name="VIP"),
                host.Group(site="north", name="Press"),
                host.Group(site="south", name="VIP"),
            ]
        )
        session.commit()
    contact_id = host.add_contact("north", last_name="N", email="n@north.test")
    with host.as_tenant("north"):
        adapter = host.state.adapter
        assert [group.key for group in adapter.groups()] == ["Press", "VIP"]
        contact = adapter.get(str(contact_id))
        adapter.set_groups(contact, add={"VIP"}, remove=set())
        host.db.session.commit()
        assert [(group.site, group.name) for group in contact.groups] == [("north", "VIP")]
    with host.as_tenant("south"):
        assert [group.key for group in host.state.adapter.groups()] == ["VIP"]
        assert host.state.adapter.get(str(contact_id)) is None  # north's contact


def test_the_cron_endpoint_ticks_every_tenant_as_itself(
    build_tenant_host: Callable[..., TenantHost], redis_client: Any
) -> None:
    host = build_tenant_host(ZOHO_SYNC_CRON_SECRET="cron-secret")
    store_connection(host, "north", "North Traders")
    store_connection(host, "south", "South Shipping")
    with host.as_tenant("north"):
        get_settings(host.db.session).auto_sync = True
        host.db.session.add(Run(kind="sync", mode="all", trigger="admin", status="succeeded"))
        host.db.session.commit()

    refused = host.client.post("/admin/zoho/cron", headers={"X-Zoho-Sync-Secret": "guess"})
    assert refused.status_code == 403
    answer = host.client.post(
        "/admin/zoho/cron", headers={"X-Zoho-Sync-Secret": "cron-secret", SITE_HEADER: "south"}
    )
    assert answer.status_code == 200
    reports = answer.get_json()["tenants"]
    # Every tenant, whatever site the scheduler's request named.
    assert reports["north"]["pull_scheduled"] and reports["north"]["auto_sync"] is True
    assert reports["south"]["pull_scheduled"] is None
    queued = Queue(host.state.config.queue, connection=redis_client).jobs
    assert [job.kwargs.get("tenant") for job in queued if job.kwargs.get("mode")] == ["north"]
