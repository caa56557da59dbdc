"""Zoho's data centres, and the allow-list for accounts servers.

After consent Zoho redirects with ``accounts-server=...`` naming the data centre that holds
the account, and the code must be exchanged there (reference §1.3). That parameter arrives in
a URL anyone can forge, and the token request carries the client secret, so it is only ever
used after :func:`trusted_accounts_server` has matched it against Zoho's own hosts (or hosts
the operator listed explicitly, such as the local sandbox).
"""

from __future__ import annotations

import re
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


class MalformedServerUrl(ValueError):
    """An accounts-server spelling that is not a plain ``scheme://host[:port]`` origin."""


# Anything a browser or urllib would drop or rewrite inside a URL (tabs, newlines, other
# control characters, spaces), and the backslash some parsers read as a slash.
_REWRITTEN = re.compile(r"[\x00-\x20\x7f\\]")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")
_PORT = re.compile(r"[1-9][0-9]{0,4}")


def parse_server_url(url: str) -> str:
    """The origin ``scheme://host[:port]`` that ``url`` spells, or :class:`MalformedServerUrl`.

    The origin is what is compared and stored, so every spelling of one server becomes the
    same text: surrounding whitespace is stripped, scheme and host are lower-cased, the
    default port and a lone trailing ``/`` are dropped. Whatever could make two parsers
    disagree about the host is refused rather than guessed at: characters inside the URL
    that urllib silently deletes (tabs, newlines), backslashes, credentials, any path but
    ``/`` (``/../..`` included), queries, fragments and ports written with leading zeros.
    """
    if not isinstance(url, str):
        raise MalformedServerUrl("it is not text")
    text = url.strip()
    if not text:
        raise MalformedServerUrl("it is empty")
    if _REWRITTEN.search(text):
        raise MalformedServerUrl("it contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # an unbalanced IPv6 bracket
        raise MalformedServerUrl(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not text[len(scheme) :].startswith("://"):
        raise MalformedServerUrl("it must start with https:// (or http:// for a local server)")
    if "?" in text or "#" in text:
        raise MalformedServerUrl("it has a query or fragment; give only scheme://host[:port]")
    if parts.path not in ("", "/"):
        raise MalformedServerUrl(f"it has the path {parts.path!r}; give only scheme://host[:port]")
    netloc = parts.netloc.lower()
    if "@" in netloc:
        raise MalformedServerUrl("it carries a user name or password")
    if netloc.startswith("["):  # an IPv6 literal, whose colons are not the port's
        inside, bracket, rest = netloc.partition("]")
        host = inside + bracket
        colon, port = rest[:1], rest[1:]
        if rest and colon != ":":
            raise MalformedServerUrl(f"{netloc!r} is not a host name")
    else:
        host, colon, port = netloc.partition(":")
    if not _HOST.fullmatch(host):
        raise MalformedServerUrl(f"{host!r} is not a host name")
    if colon:
        if not _PORT.fullmatch(port) or int(port) > 65535:
            raise MalformedServerUrl(
                f"the port {port!r} is not a number from 1 to 65535 without leading zeros"
            )
        if int(port) == _DEFAULT_PORTS[scheme]:
            colon, port = "", ""
    return f"{scheme}://{host}{colon}{port}"


def normalise_server_url(url: str) -> str | None:
    """:func:`parse_server_url`, with None for a spelling it refuses."""
    try:
        return parse_server_url(url)
    except MalformedServerUrl:
        return None


def trusted_accounts_server(url: str, extra: Iterable[str] = ()) -> str:
    """Return ``url`` normalised if tokens may be requested there, else raise.

    Zoho's own servers are accepted over https only. ``extra`` servers (from
    ``ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS``) are accepted exactly as listed, http included,
    because the local sandbox runs on ``http://127.0.0.1:PORT``.
    """
    shown = repr(url)[:120]
    try:
        normalised = parse_server_url(url)
    except MalformedServerUrl as exc:
        raise UnknownAccountsServer(
            f"Refusing accounts server {shown}: {exc}",
            advice="Give the server as its plain origin, e.g. https://accounts.zoho.eu.",
        ) from None
    if normalised in _BY_ACCOUNTS_SERVER:
        return normalised
    trusted_extras = {normalise_server_url(item) for item in extra} - {None}
    if normalised in trusted_extras:
        return normalised
    if normalised.startswith("http://"):
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
