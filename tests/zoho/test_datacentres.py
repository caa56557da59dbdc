"""Only Zoho's own accounts servers (over https) and explicitly listed ones are trusted."""

from __future__ import annotations

import pytest

from flask_zoho_sync.zoho.datacentres import (
    DATA_CENTRES,
    UnknownAccountsServer,
    data_centre_for,
    trusted_accounts_server,
)


@pytest.mark.parametrize(
    "server",
    [
        "https://accounts.zoho.com",
        "https://accounts.zoho.eu",
        "https://accounts.zoho.in",
        "https://accounts.zoho.com.au",
        "https://accounts.zoho.au",
        "https://accounts.zoho.jp",
        "https://accounts.zoho.com.cn",
        "https://accounts.zohocloud.ca",
        "https://accounts.zoho.sa",
        "https://accounts.zoho.uk",
    ],
)
def test_every_zoho_data_centre_is_trusted(server: str) -> None:
    assert trusted_accounts_server(server) == server


def test_data_centres_pair_accounts_servers_with_api_domains() -> None:
    assert set(DATA_CENTRES) == {"us", "eu", "in", "au", "jp", "cn", "ca", "sa", "uk"}
    assert DATA_CENTRES["eu"].api_domain == "https://www.zohoapis.eu"
    assert DATA_CENTRES["ca"].accounts_server == "https://accounts.zohocloud.ca"
    assert data_centre_for("https://accounts.zoho.au") is DATA_CENTRES["au"]
    assert data_centre_for("https://evil.example") is None


@pytest.mark.parametrize(
    "spelling",
    ["https://ACCOUNTS.Zoho.EU", "https://accounts.zoho.eu/", "https://accounts.zoho.eu:443"],
)
def test_spellings_of_a_server_are_normalised(spelling: str) -> None:
    assert trusted_accounts_server(spelling) == "https://accounts.zoho.eu"


def test_zoho_over_plain_http_is_refused() -> None:
    with pytest.raises(UnknownAccountsServer, match="https"):
        trusted_accounts_server("http://accounts.zoho.com")


@pytest.mark.parametrize(
    "server",
    [
        "https://accounts.zoho.com.evil.example",
        "https://accounts.zoho.com@evil.example",
        "https://evil.example/?x=https://accounts.zoho.com",
        "accounts.zoho.com",
        "javascript:alert(1)",
        "",
        "https://accounts.zoho.ca",
    ],
)
def test_lookalike_and_foreign_servers_are_refused(server: str) -> None:
    with pytest.raises(UnknownAccountsServer):
        trusted_accounts_server(server)


def test_refusal_names_the_server_and_the_setting() -> None:
    with pytest.raises(UnknownAccountsServer) as caught:
        trusted_accounts_server("https://evil.example")

    assert "https://evil.example" in str(caught.value)
    assert "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS" in str(caught.value)


def test_listed_extra_servers_are_trusted_even_over_http() -> None:
    extra = ["http://127.0.0.1:8765/"]

    assert trusted_accounts_server("http://127.0.0.1:8765", extra) == "http://127.0.0.1:8765"


def test_extra_servers_must_match_exactly() -> None:
    extra = ["http://127.0.0.1:8765"]

    for near_miss in ("http://127.0.0.1:8766", "https://127.0.0.1:8765", "http://localhost:8765"):
        with pytest.raises(UnknownAccountsServer):
            trusted_accounts_server(near_miss, extra)


# -- spellings an attacker tried (issue 25, item 8) ------------------------------------------

SANDBOX = "http://127.0.0.1:38765"


@pytest.mark.parametrize(
    ("spelling", "origin"),
    [
        ("https://accounts.zoho.eu/", "https://accounts.zoho.eu"),
        (" https://accounts.zoho.eu", "https://accounts.zoho.eu"),
        ("https://accounts.zoho.eu\t", "https://accounts.zoho.eu"),
        ("\nhttps://accounts.zoho.eu \r\n", "https://accounts.zoho.eu"),
        ("HTTPS://accounts.zoho.eu", "https://accounts.zoho.eu"),
        ("HtTpS://ACCOUNTS.ZOHO.EU:443/", "https://accounts.zoho.eu"),
        ("HTTP://127.0.0.1:38765/", SANDBOX),
        (" http://127.0.0.1:38765\t", SANDBOX),
    ],
)
def test_harmless_spellings_are_accepted_as_the_normalised_origin(
    spelling: str, origin: str
) -> None:
    assert trusted_accounts_server(spelling, [SANDBOX]) == origin


@pytest.mark.parametrize(
    ("spelling", "reason"),
    [
        ("https://accounts.zoho.eu/../..", "has the path '/../..'"),
        ("https://accounts.zoho.eu/%2e%2e/", "has the path"),
        ("https://accounts.zoho.eu/oauth", "has the path '/oauth'"),
        ("http://127.0.0.1:038765", "without leading zeros"),
        ("https://accounts.zoho.eu:0443", "without leading zeros"),
        ("https://accounts.zoho.eu:", "the port ''"),
        ("https://accounts.zoho.eu:99999", "from 1 to 65535"),
        ("https://accounts.zo\tho.eu", "control characters"),
        ("https://accounts.zoho.eu\n.evil.example", "control characters"),
        ("https://accounts.zoho.eu\\@evil.example", "backslashes"),
        ("https://user:pw@accounts.zoho.eu", "user name or password"),
        ("https://accounts.zoho.eu?next=x", "query or fragment"),
        ("https://accounts.zoho.eu#x", "query or fragment"),
        ("https://accounts.zoho.eu?", "query or fragment"),
        ("https:accounts.zoho.eu", "must start with https://"),
        ("ftp://accounts.zoho.eu", "must start with https://"),
        ("https://accounts.zoho.eu.", "not a host name"),
        ("https://acc%6Funts.zoho.eu", "not a host name"),
        ("https://[::1", "IPv6"),
        ("   ", "empty"),
    ],
)
def test_suspicious_spellings_are_refused_saying_what_is_wrong(spelling: str, reason: str) -> None:
    with pytest.raises(UnknownAccountsServer) as caught:
        trusted_accounts_server(spelling, [SANDBOX])
    assert reason in str(caught.value)
    assert "plain origin" in str(caught.value)


def test_a_listed_server_with_a_leading_zero_port_matches_nothing() -> None:
    with pytest.raises(UnknownAccountsServer):
        trusted_accounts_server(SANDBOX, ["http://127.0.0.1:038765"])
