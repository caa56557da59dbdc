"""Zoho keeps 20 refresh tokens per user and app, and the 21st silently revokes the oldest
(reference §1). A platform whose sites are all connected by one Zoho user meets that limit
at its 21st site; the admin who connects a site is told as it nears, and told which site
lost its connection when it is passed. The sandbox enforces the same limit."""

from __future__ import annotations

import pytest
from click.testing import Result

from flask_zoho_sync.errors import ZohoSyncError
from flask_zoho_sync.sandbox.handle import SandboxHandle
from flask_zoho_sync.zoho.errors import ZohoError
from tests.tenants.conftest import TenantHost

pytestmark = pytest.mark.redis

SITES = [f"site{n:02d}" for n in range(21)]


def connect_by_cli(host: TenantHost, zoho_sandbox: SandboxHandle, site: str) -> Result:
    grant = zoho_sandbox.mint_refresh_token()  # the sandbox's one user, each time
    result = host.app.test_cli_runner().invoke(
        args=[
            "zoho-sync",
            "--tenant",
            site,
            "connect",
            "--refresh-token",
            grant["refresh_token"],
            "--accounts-server",
            zoho_sandbox.accounts_server,
        ]
    )
    assert result.exit_code == 0, result.output
    return result


def test_connecting_a_21st_site_as_one_zoho_user_says_which_site_lost_its_connection(
    sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle
) -> None:
    host = sandbox_tenant_host
    warnings = {site: connect_by_cli(host, zoho_sandbox, site).stderr for site in SITES}

    assert all(not warnings[site] for site in SITES[:17]), warnings
    assert "18 sites of this app are connected as" in warnings["site17"]
    assert "connect further sites as another Zoho user" in warnings["site19"]
    last = warnings["site20"]
    assert "21 sites of this app are connected as" in last
    assert "(site00) have most likely lost their connection" in last

    # What the warning says is so: Zoho revoked the oldest site's token, and only that one.
    zoho_sandbox.faults(expire_access_tokens=True)
    with host.as_tenant("site00"), pytest.raises((ZohoError, ZohoSyncError)):
        host.state.client().org()
    for site in ("site01", "site20"):
        with host.as_tenant(site):
            assert host.state.client().org()["id"]


def test_a_site_connected_again_is_the_newest_and_the_next_oldest_is_named(
    sandbox_tenant_host: TenantHost, zoho_sandbox: SandboxHandle
) -> None:
    """The admin of the site that lost its connection connects it again as the same user:
    that revokes the next oldest token, and the warning names that site, not this one."""
    host = sandbox_tenant_host
    for site in SITES:
        connect_by_cli(host, zoho_sandbox, site)

    again = connect_by_cli(host, zoho_sandbox, "site00").stderr

    assert "(site01) have most likely lost their connection" in again
    assert "site00" not in again.split("(", 1)[1]
