"""Zoho rations credits per org: sites connected to one Zoho org share its daily budget,
and a site on another org keeps its own.

The sandbox is one Zoho org, so every site connected to it gets the same org id, as two
sites of a platform connected to one customer's CRM would. A site "on another org" is made
by giving its stored connection another org id, as connecting to a second org would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
import sqlalchemy as sa

from flask_zoho_sync import jobs
from flask_zoho_sync.models import Connection, Run
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.sync.context import RunReport
from flask_zoho_sync.tenancy import ALL_TENANTS
from flask_zoho_sync.zoho.running_credits import RedisRunningCredits
from tests.tenants.conftest import TenantHost, store_connection
from tests.tenants.test_isolation import connect, emails

pytestmark = pytest.mark.redis

SHARED_NOTE = "by other sites on this Zoho org"


@dataclass
class Spent:
    """What each site's runs spent, in credits, as their History rows record it."""

    north: int
    south: int
    west: int


def credits_by_site(host: TenantHost) -> dict[str, int]:
    with host.app.app_context():
        rows = host.db.session.execute(
            sa.select(Run.tenant_id, sa.func.sum(Run.credits))
            .group_by(Run.tenant_id)
            .execution_options(**{ALL_TENANTS: True})
        ).all()
    return {str(site): int(credits or 0) for site, credits in rows}


def sync(host: TenantHost, site: str) -> RunReport:
    with host.as_tenant(site):
        return host.state.run_sync(mode="since_last", trigger="admin")


def budget(host: TenantHost, credits: int) -> None:
    host.state.config = replace(host.state.config, daily_credit_budget=credits)


@pytest.fixture
def three_sites(sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle) -> Spent:
    """North and south connected to the sandbox's org, west to another; each has made its
    first sync, north a large one (200 contacts: some twenty credits of upserts), with no
    budget set yet."""
    host = sandbox_tenant_host
    connect(host, "north", zoho_sandbox, "Leads")
    connect(host, "south", zoho_sandbox, "Contacts")
    connect(host, "west", zoho_sandbox, "Contacts")
    with host.as_tenant("west"):
        host.db.session.execute(sa.update(Connection).values(org_id="another-org"))
        host.db.session.commit()
    with host.app.app_context():
        host.db.session.add_all(
            host.Contact(site="north", last_name=f"N{n}", email=f"n{n}@north.test")
            for n in range(200)
        )
        host.db.session.commit()
    host.add_contact("south", last_name="S", email="s@south.test")
    host.add_contact("west", last_name="W", email="w@west.test")
    for site in ("north", "south", "west"):
        with host.as_tenant(site):
            report = host.state.run_sync(mode="all", trigger="admin")
        assert report.status == "succeeded", report.message
    spent = credits_by_site(host)
    assert spent["north"] > spent["south"] > 0 and spent["west"] > 0
    return Spent(north=spent["north"], south=spent["south"], west=spent["west"])


def test_what_one_site_spent_counts_against_another_site_on_the_same_org(
    sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle, three_sites: Spent
) -> None:
    host, spent = sandbox_tenant_host, three_sites
    # The org has spent exactly the budget: south on its own would have north's share left.
    budget(host, spent.north + spent.south)
    host.add_contact("south", last_name="Late", email="late@south.test")

    report = sync(host, "south")

    assert report.status == "paused", report.message
    message = report.message or ""
    assert f"budget of {spent.north + spent.south} Zoho credits has 0 left" in message
    assert f"of which {spent.north} {SHARED_NOTE}" in message
    assert "late@south.test" not in emails(zoho_sandbox.records("Contacts"))
    with host.as_tenant("south"):  # History keeps the same explanation
        run = host.db.session.scalars(sa.select(Run).order_by(Run.id.desc())).first()
        assert run is not None and run.status == "paused"
        assert f"of which {spent.north} {SHARED_NOTE}" in (run.error or "")
        jobs.schedule_resume(host.state, report, mode="since_last", trigger="admin")
        get_settings(host.db.session).auto_sync = True
        host.db.session.commit()
    with host.app.app_context():  # the tick, meanwhile, schedules nothing and says why
        tick = jobs.tick_tenants(host.state, ["south"])["south"]
    assert (tick.message or "").startswith("Paused until"), tick.message
    assert f"Other sites on this Zoho org, which share its budget, spent {spent.north} " in (
        tick.message or ""
    )


def test_a_site_on_another_org_keeps_its_own_budget(
    sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle, three_sites: Spent
) -> None:
    host, spent = sandbox_tenant_host, three_sites
    budget(host, spent.north + spent.south)  # the sandbox org's budget is spent
    host.add_contact("west", last_name="Late", email="late@west.test")
    host.add_contact("south", last_name="Late", email="late@south.test")

    west = sync(host, "west")
    south = sync(host, "south")

    assert west.status == "succeeded", west.message
    assert "late@west.test" in emails(zoho_sandbox.records("Contacts"))
    assert south.status == "paused", south.message
    # West's credits are its own org's: south's pause names north's alone, not west's too.
    assert f"of which {spent.north} {SHARED_NOTE}" in (south.message or "")


def test_the_figures_an_admin_reads_are_the_orgs(
    sandbox_tenant_host: TenantHost, three_sites: Spent
) -> None:
    host, spent = sandbox_tenant_host, three_sites

    def used_last_24h(site: str) -> int:
        answer = host.get(site, "/health")
        assert answer.status_code in (200, 503), answer.get_data(as_text=True)
        return int(answer.get_json()["credits"]["used_last_24h"])

    assert used_last_24h("south") == spent.north + spent.south
    assert used_last_24h("north") == spent.north + spent.south
    assert used_last_24h("west") == spent.west

    # The plan names the credits other sites used of the budget south sees.
    budget(host, 10 * (spent.north + spent.south))
    page = host.post("south", "/sync/plan", {"mode": "since_last", "here": "1"})
    assert f"other sites on this Zoho org used {spent.north:,} credits of it" in page.get_data(
        as_text=True
    )
    west_page = host.post("west", "/sync/plan", {"mode": "since_last", "here": "1"})
    assert "other sites on this Zoho org" not in west_page.get_data(as_text=True)

    # The alert that the budget runs low says whose credits they were.
    budget(host, sum(credits_by_site(host).get(site, 0) for site in ("north", "south")) + 1)
    with host.as_tenant("south"):
        low = host.state.credit_budget_low()
    assert low is not None
    assert low["spent"] == sum(credits_by_site(host).get(site, 0) for site in ("north", "south"))
    assert f"of which {spent.north} {SHARED_NOTE}" in low["reason"]


def test_an_org_is_told_by_its_id_and_api_domain_and_an_unknown_org_counts_alone(
    tenant_host: TenantHost,
) -> None:
    host = tenant_host
    for site, credits in (("north", 40), ("south", 7)):
        store_connection(host, site, f"{site} org")  # each on an org of its own so far
        with host.as_tenant(site):
            host.db.session.add(Run(kind="sync", mode="all", status="succeeded", credits=credits))
            host.db.session.commit()

    def used_last_24h(site: str) -> int:
        return int(host.get(site, "/health").get_json()["credits"]["used_last_24h"])

    def south_connection(**values: str | None) -> None:
        with host.as_tenant("south"):
            host.db.session.execute(sa.update(Connection).values(**values))
            host.db.session.commit()

    assert (used_last_24h("north"), used_last_24h("south")) == (40, 7)
    south_connection(org_id="org-north")  # south reconnected to north's org
    assert (used_last_24h("north"), used_last_24h("south")) == (47, 47)
    # The same id in another data centre is another org.
    south_connection(api_domain="https://www.zohoapis.com")
    assert (used_last_24h("north"), used_last_24h("south")) == (40, 7)
    # Before Zoho has said which org it is, a site counts its own runs, as before tenants.
    south_connection(api_domain="https://www.zohoapis.eu", org_id=None)
    assert (used_last_24h("north"), used_last_24h("south")) == (40, 7)


def test_a_run_going_on_at_another_site_of_the_org_counts_before_it_ends(
    sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle, three_sites: Spent
) -> None:
    """Two sites on one org, each on its own worker: north's run is still going (its
    credits not yet in History), and south must not spend them a second time."""
    host, spent = sandbox_tenant_host, three_sites
    budget(host, spent.north + spent.south + 30)
    with host.as_tenant("north"):
        org_id = host.db.session.scalar(sa.select(Connection.org_id))
    north_running = RedisRunningCredits(
        host.state.redis(),
        f"zoho_sync:credits-running:{host.state.config.client_id}:{org_id}",
        run="north-run-going-on",
    )
    north_running.add(30)  # what north's run has spent so far
    host.add_contact("south", last_name="Late", email="late@south.test")

    report = sync(host, "south")

    assert report.status == "paused", report.message
    assert f"of which {spent.north + 30} {SHARED_NOTE}" in (report.message or "")
    assert "late@south.test" not in emails(zoho_sandbox.records("Contacts"))

    north_running.release()  # north's run ended (its credits now in History: here, none)
    report = sync(host, "south")
    assert report.status == "succeeded", report.message
    assert "late@south.test" in emails(zoho_sandbox.records("Contacts"))
    running = host.state.redis().hgetall(north_running.key)
    assert not running, running  # south's finished run left nothing in the tally
