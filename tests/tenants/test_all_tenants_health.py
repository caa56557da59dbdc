"""One health check and one scrape for every tenant of a host (``?tenant=*``, ``status
--all-tenants``): an operator of many sites alarms on one answer that names the sick one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flask_zoho_sync.incidents import INCIDENT_TITLES, clear_incidents, open_incident
from tests.tenants.conftest import PREFIX, SITE_HEADER, TenantHost, store_connection

pytestmark = pytest.mark.redis

TOKEN = "monitor-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SITES = ("east", "north", "south")
SOUTH_PROBLEM = f"south: {INCIDENT_TITLES['connection_lost']}: Zoho refused south's refresh token."


def south_lost_its_connection(host: TenantHost, *, lost: bool = True) -> None:
    with host.as_tenant("south"):
        session = host.db.session
        if lost:
            open_incident(session, "connection_lost", "Zoho refused south's refresh token.")
        else:
            clear_incidents(session, "connection_lost")
        session.commit()


@pytest.fixture
def three_sites(build_tenant_host: Callable[..., TenantHost]) -> TenantHost:
    host = build_tenant_host(ZOHO_SYNC_HEALTH_TOKEN=TOKEN)
    for site in SITES:
        store_connection(host, site, site.title())
    return host


def all_health(host: TenantHost, headers: dict[str, str] | None = None) -> Any:
    return host.client.get(f"{PREFIX}/health?tenant=*", headers=headers or BEARER)


def test_one_unhealthy_tenant_fails_the_whole_answer_and_is_the_only_one_named(
    three_sites: TenantHost,
) -> None:
    host = three_sites
    healthy = all_health(host)
    assert healthy.status_code == 200, healthy.get_json()
    assert healthy.get_json()["problems"] == []

    south_lost_its_connection(host)
    answer = all_health(host)
    assert answer.status_code == 503
    health = answer.get_json()
    assert health["healthy"] is False
    assert sorted(health["tenants"]) == list(SITES)
    assert {site: report["healthy"] for site, report in health["tenants"].items()} == {
        "east": True,
        "north": True,
        "south": False,
    }
    assert health["tenants"]["south"]["token_state"] == "lost"
    assert health["tenants"]["north"]["token_state"] == "ok"
    assert health["problems"] == [SOUTH_PROBLEM]
    # The one RQ queue all tenants share is reported once, not in every tenant's report.
    assert set(health["queue"]) == {"waiting", "scheduled", "failed"}
    assert not any("queue" in report for report in health["tenants"].values())

    # Asking for one tenant still answers exactly as before.
    north = host.client.get(f"{PREFIX}/health?tenant=north", headers=BEARER)
    assert north.status_code == 200
    assert "tenants" not in north.get_json() and "queue" in north.get_json()
    assert host.client.get(f"{PREFIX}/health?tenant=south", headers=BEARER).status_code == 503


def test_only_the_operators_token_reads_every_tenant(three_sites: TenantHost) -> None:
    host = three_sites
    # An admin signed in to north may not see south's figures, nor ask for everyone's.
    as_admin = host.client.get(f"{PREFIX}/health?tenant=*", headers={SITE_HEADER: "north"})
    assert as_admin.status_code == 403
    assert "tenants" not in (as_admin.get_json() or {})
    scrape = host.client.get(f"{PREFIX}/metrics?tenant=*", headers={SITE_HEADER: "north"})
    assert scrape.status_code == 403
    wrong = all_health(host, {"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403
    assert "tenants" not in (wrong.get_json() or {})


def test_redis_down_is_said_once_for_all_tenants(
    build_tenant_host: Callable[..., TenantHost],
) -> None:
    host = build_tenant_host(
        ZOHO_SYNC_HEALTH_TOKEN=TOKEN, ZOHO_SYNC_REDIS_URL="redis://127.0.0.1:1/0"
    )
    for site in SITES:
        store_connection(host, site, site.title())
    answer = all_health(host)
    assert answer.status_code == 503
    health = answer.get_json()
    assert health["queue"] is None
    [problem] = health["problems"]
    assert problem.startswith("Redis at redis://127.0.0.1:1/0 does not answer")
    assert all(report["healthy"] for report in health["tenants"].values())


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape by name and labels; each family must appear only once."""
    families = list(text_string_to_metric_families(text))
    names = [family.name for family in families]
    assert len(names) == len(set(names)), "a metric family appears twice in the scrape"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }


def test_one_scrape_labels_every_series_with_its_tenant(three_sites: TenantHost) -> None:
    host = three_sites
    south_lost_its_connection(host)
    host.add_contact("north", last_name="N1", email="n1@north.test")
    host.add_contact("north", last_name="N2", email="n2@north.test")
    host.add_contact("east", last_name="E1", email="e1@east.test")

    answer = host.client.get(f"{PREFIX}/metrics?tenant=*", headers=BEARER)
    assert answer.status_code == 200
    samples = scraped(answer.get_data(as_text=True))
    assert all(dict(labels).get("tenant") in SITES for _name, labels in samples)
    pending = {
        dict(labels)["tenant"]: value
        for (name, labels), value in samples.items()
        if name == "zoho_sync_outbox_pending_contacts"
    }
    assert pending == {"east": 1, "north": 2, "south": 0}
    incidents = {
        dict(labels)["tenant"]: value
        for (name, labels), value in samples.items()
        if name == "zoho_sync_open_incidents"
    }
    assert incidents == {"south": 1}
    assert (
        samples[
            (
                "zoho_sync_open_incidents",
                frozenset({("tenant", "south"), ("kind", "connection_lost")}),
            )
        ]
        == 1
    )

    # One tenant's scrape keeps the names and labels dashboards were built on.
    north = scraped(
        host.client.get(f"{PREFIX}/metrics?tenant=north", headers=BEARER).get_data(as_text=True)
    )
    assert north[("zoho_sync_outbox_pending_contacts", frozenset())] == 2
    assert not any("tenant" in dict(labels) for _name, labels in north)


def test_status_check_all_tenants_exits_1_while_one_tenant_is_unhealthy(
    three_sites: TenantHost,
) -> None:
    host = three_sites
    runner = host.app.test_cli_runner()

    south_lost_its_connection(host)
    sick = runner.invoke(args=["zoho-sync", "status", "--check", "--all-tenants"])
    assert sick.exit_code == 1
    assert sick.output.splitlines() == [
        f"UNHEALTHY: {SOUTH_PROBLEM}",
        "unhealthy: 1 of 3 tenants",
    ]

    south_lost_its_connection(host, lost=False)
    well = runner.invoke(args=["zoho-sync", "status", "--check", "--all-tenants"])
    assert (well.exit_code, well.output) == (0, "healthy: 3 tenants\n")

    one_tenant = runner.invoke(
        args=["zoho-sync", "--tenant", "south", "status", "--check", "--all-tenants"]
    )
    assert one_tenant.exit_code == 2
    assert "leave out --tenant" in one_tenant.output
