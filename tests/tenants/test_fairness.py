"""Tenants share the workers: one tenant's large backlog goes a slice a job, and another
tenant's push, due meanwhile, runs between the slices instead of after all of them."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from rq import Worker
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from flask_zoho_sync import jobs
from flask_zoho_sync.models import Run
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.tenancy import ALL_TENANTS
from tests.tenants.conftest import TenantHost, sandbox_settings
from tests.tenants.test_isolation import connect, emails, work_queue

pytestmark = pytest.mark.redis


@pytest.fixture
def sliced_host(
    build_tenant_host: Callable[..., TenantHost], zoho_sandbox: SandboxHandle
) -> TenantHost:
    return build_tenant_host(
        ZOHO_SYNC_PUSH_SLICE=3, ZOHO_SYNC_PUSH_DELAY=0, **sandbox_settings(zoho_sandbox)
    )


def test_a_large_backlog_goes_in_slices_and_another_tenants_push_runs_between_them(
    sliced_host: TenantHost, zoho_sandbox: SandboxHandle
) -> None:
    host = sliced_host
    connect(host, "north", zoho_sandbox, "Leads")
    connect(host, "south", zoho_sandbox, "Contacts")
    for site in ("north", "south"):  # the first sync by hand, then automatic sync on
        with host.as_tenant(site):
            host.state.run_sync(mode="all", trigger="admin")
            get_settings(host.db.session).auto_sync = True
            host.db.session.commit()
            host.state.preferences_changed()

    with host.app.app_context():  # a host import: seven of north's contacts in one commit
        host.db.session.add_all(
            host.Contact(site="north", last_name=f"N{n}", email=f"n{n}@north.test")
            for n in range(7)
        )
        host.db.session.commit()
    host.add_contact("south", last_name="S", email="s@south.test")
    work_queue(host)

    assert emails(zoho_sandbox.records("Leads")) == {f"n{n}@north.test" for n in range(7)}
    assert emails(zoho_sandbox.records("Contacts")) == {"s@south.test"}
    with host.app.app_context():
        runs = host.db.session.execute(
            sa.select(Run.tenant_id, Run.counts)
            .where(Run.trigger == "auto")
            .order_by(Run.id)
            .execution_options(**{ALL_TENANTS: True})
        ).all()
    sent = [(tenant, counts.get("to_zoho.create", 0)) for tenant, counts in runs]
    assert sent == [("north", 3), ("south", 1), ("north", 3), ("north", 1)]
    # One upsert per slice and one for south; the slices after the first pull nothing.
    assert zoho_sandbox.stats()["calls"].get("POST /Leads/upsert") == 3


def test_an_all_run_waits_while_every_other_worker_is_in_one_so_pushes_keep_a_worker(
    sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle
) -> None:
    """Two workers: north's "all" run holds one (hours, for a large site); south's "all"
    run, asked for meanwhile, is put off rather than take the other, which stays free for
    every site's pushes. When north's ends, south's runs."""
    host = sandbox_tenant_host
    connect(host, "north", zoho_sandbox, "Leads")
    connect(host, "south", zoho_sandbox, "Contacts")
    host.add_contact("south", last_name="S", email="s@south.test")
    with host.app.app_context():
        connection = host.state.redis()
        queue = jobs.queue_for(host.state)
        other_worker = Worker([queue], connection=connection, name="north-all-run-worker")
        other_worker.register_birth()
        north_run = Job.create(
            jobs.run_sync_job,
            kwargs={"mode": "all", "trigger": "admin", "tenant": "north"},
            connection=connection,
            id="zoho-sync-north-all-going-on",
        )
        north_run.save()
        started = StartedJobRegistry(queue=queue).key  # north's run: on the other worker
        going_on = f"{north_run.id}:north-execution"
        connection.zadd(started, {going_on: time.time() + 600})
    with host.as_tenant("south"):
        asked = jobs.schedule_sync(host.state, mode="all", trigger="admin")

    work_queue(host)  # this test's worker is the second one

    with host.app.app_context():
        outcome = Job.fetch(asked, connection=connection).return_value()
        assert outcome["status"] == "waiting", outcome
        assert "1 of the 2 workers" in outcome["message"]
        waiting = ScheduledJobRegistry(queue=queue).get_job_ids()
        assert waiting == [outcome["next"]]
    assert emails(zoho_sandbox.records("Contacts")) == set()  # south's run has not run
    progress = host.get("south", "/sync/progress").get_data(as_text=True)
    assert "1 of the 2 workers are each in a run of every record" in progress  # why not yet
    assert "1 of the 2 workers" not in host.get("north", "/sync/progress").get_data(as_text=True)

    with host.app.app_context():  # north's run ends; south's comes due
        connection.zrem(started, going_on)
        later = Job.fetch(outcome["next"], connection=connection)
        ScheduledJobRegistry(queue=queue).remove(later)
        queue.enqueue_job(later)
    work_queue(host)

    assert emails(zoho_sandbox.records("Contacts")) == {"s@south.test"}
    with host.as_tenant("south"):
        statuses = [run.status for run in host.db.session.scalars(sa.select(Run))]
    assert statuses == ["succeeded"]
    other_worker.register_death()
