"""Zoho's data centres, and the allow-list for accounts servers.

After consent Zoho redirects with ``accounts-server=...`` naming the data centre that holds
the account, and the code must be exchanged there (reference §1.3). That parameter arrives in
a URL anyone can forge, and the token request carries the client secret, so it is only ever
used after :func:`trusted_accounts_server` has matched it against Zoho's own hosts (or hosts
the operator listed explicitly, such as the local sandbox).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import UnknownAccountsServer

EXTRA_SERVERS_SETTING = "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS"


@dataclass(frozen=True)
class DataCentre:
    """One Zoho data centre: where its users consent, and where its CRM API answers."""

    location: str
    accounts_server: str
    api_domain: str
    #: Other spellings of the accounts server that Zoho's pages use for the same DC.
    accounts_server_aliases: tuple[str, ...] = ()

    @property
    def accounts_servers(self) -> tuple[str, ...]:
        return (self.accounts_server, *self.accounts_server_aliases)


#: Reference §1.3. UK's CRM API host is not confirmed by Zoho; the token response's
#: ``api_domain`` is what the client actually uses, so this is only a fallback.
DATA_CENTRES: Mapping[str, DataCentre] = {
    dc.location: dc
    for dc in (
        DataCentre("us", "https://accounts.zoho.com", "https://www.zohoapis.com"),
        DataCentre("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
        DataCentre("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
        DataCentre(
            "au",
            "https://accounts.zoho.com.au",
            "https://www.zohoapis.com.au",
            accounts_server_aliases=("https://accounts.zoho.au",),
        ),
        DataCentre("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
        DataCentre("cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
        DataCentre("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
        DataCentre("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
        DataCentre("uk", "https://accounts.zoho.uk", "https://www.zohoapis.uk"),
    )
}

_BY_ACCOUNTS_SERVER: Mapping[str, DataCentre] = {
    server: dc for dc in DATA_CENTRES.values() for server in dc.accounts_servers
}

_DEFAULT_PORTS = {"https": 443, "http": 80}


def data_centre_for(accounts_server: str) -> DataCentre | None:
    """The Zoho data centre behind an (already normalised) accounts server, if it is Zoho's."""
    return _BY_ACCOUNTS_SERVER.get(accounts_server)


def normalise_server_url(url: str) -> str | None:
    """``scheme://host[:port]`` with the host lower-cased, or None if ``url`` is not a plain
    server URL. Paths are dropped (``https://accounts.zoho.com/`` is the same server);
    credentials, queries and fragments make it suspicious, so those are refused."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except (ValueError, AttributeError):
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return None
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def trusted_accounts_server(url: str, extra: Iterable[str] = ()) -> str:
    """Return ``url`` normalised if tokens may be requested there, else raise.

    Zoho's own servers are accepted over https only. ``extra`` servers (from
    ``ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS``) are accepted exactly as listed, http included,
    because the local sandbox runs on ``http://127.0.0.1:PORT``.
    """
    normalised = normalise_server_url(url) if isinstance(url, str) else None
    if normalised is not None:
        if normalised in _BY_ACCOUNTS_SERVER:
            return normalised
        trusted_extras = {normalise_server_url(item) for item in extra} - {None}
        if normalised in trusted_extras:
            return normalised
    shown = repr(url)[:120]
    if normalised is not None and normalised.startswith("http://"):
        https_twin = "https://" + normalised.removeprefix("http://")
        if https_twin in _BY_ACCOUNTS_SERVER:
            raise UnknownAccountsServer(
                f"Refusing accounts server {shown}: Zoho's accounts servers are only trusted "
                f"over https",
                advice=f"Use {https_twin} instead.",
            )
    raise UnknownAccountsServer(
        f"Refusing accounts server {shown}: it is not one of Zoho's data centres "
        f"and not listed in {EXTRA_SERVERS_SETTING}"
    )
