"""OAuth with Zoho Accounts: consent URL, code exchange, refresh under a lock, revoke.

Zoho's token endpoint has three habits this module exists to absorb (reference §1):

* errors come back as **HTTP 200** with ``{"error": ...}``, so the status says nothing;
* every data centre has its own accounts server, named in the consent redirect, and the
  token request carries the client secret, so that server is checked against an allow-list
  before anything is sent;
* at most ten access tokens per refresh token per ten minutes, so refreshes are cached,
  serialised across processes by a lock, and skipped when another process already did one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import redis
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client.oauth2_session import OAuth2Auth, OAuth2ClientAuth
from authlib.oauth2.client import OAuth2Client

from .datacentres import data_centre_for, trusted_accounts_server
from .errors import (
    ZohoError,
    ZohoMalformedResponse,
    ZohoReconnectRequired,
    ZohoRetryLater,
    ZohoUnavailable,
    body_excerpt,
    error_from_response,
)
from .meter import UsageMeter

logger = logging.getLogger(__name__)

#: What a contact sync needs (reference §1.8): the two modules it can sync, field and module
#: metadata for mapping, org/user for time zones, notifications, bulk for large loads, and
#: COQL for pulls of 2,000 records a call.
DEFAULT_SCOPES: tuple[str, ...] = (
    "ZohoCRM.modules.leads.ALL",
    "ZohoCRM.modules.contacts.ALL",
    "ZohoCRM.coql.READ",
    "ZohoCRM.settings.fields.READ",
    "ZohoCRM.settings.modules.READ",
    "ZohoCRM.org.READ",
    "ZohoCRM.users.READ",
    "ZohoCRM.notifications.ALL",
    "ZohoCRM.bulk.ALL",
    "ZohoFiles.files.ALL",
)

#: What restoring a record from Zoho's recycle bin needs (docs/zoho-api-notes.md); asked
#: for only when a revert may restore (``ZOHO_SYNC_REVERT_FROM_RECYCLE_BIN``).
RECYCLE_BIN_SCOPE = "ZohoCRM.settings.recycle_bin.UPDATE"

#: Zoho's documented access-token life, used when a token response omits it (seen "from
#: time to time" in the wild, reference §10).
DEFAULT_ACCESS_TOKEN_SECONDS = 3600.0

AUTHORIZE_PATH = "/oauth/v2/auth"
TOKEN_PATH = "/oauth/v2/token"
REVOKE_PATH = "/oauth/v2/token/revoke"


@dataclass
class TokenSet:
    """Everything needed to call Zoho for one connection.

    ``api_domain`` and ``accounts_server`` are stored with the tokens because both depend
    on the account's data centre: API calls must go to the former and refreshes to the
    latter. The tokens are kept out of ``repr`` so a logged TokenSet leaks nothing.
    """

    refresh_token: str = field(repr=False)
    access_token: str | None = field(repr=False)
    expires_at: float  # epoch seconds
    api_domain: str
    accounts_server: str
    scope: str | None = None

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """True if the access token is missing or will expire within ``seconds``."""
        if not self.access_token:
            return True
        current = time.time() if now is None else now
        return self.expires_at - current <= seconds


class TokenStoreBusy(Exception):
    """The store cannot take a token now (its database is locked by a write in progress);
    a later save may succeed."""


class TokenStore(Protocol):
    """Where a connection's tokens live between processes (the extension encrypts them in
    its database). ``load`` returns None when nothing is connected; ``save`` raises
    :class:`TokenStoreBusy` when it cannot save now but may later."""

    def load(self) -> TokenSet | None: ...

    def save(self, tokens: TokenSet) -> None: ...


class MemoryTokenStore:
    """A process-local store, for tests and scripts."""

    def __init__(self, tokens: TokenSet | None = None) -> None:
        self._lock = threading.Lock()
        self._tokens = replace(tokens) if tokens is not None else None
        #: How many times ``save`` ran; tests use it to count refreshes.
        self.saves = 0

    def load(self) -> TokenSet | None:
        with self._lock:
            return replace(self._tokens) if self._tokens is not None else None

    def save(self, tokens: TokenSet) -> None:
        with self._lock:
            self._tokens = replace(tokens)
            self.saves += 1


class _ZohoTokenClient(OAuth2Client):
    """Authlib's OAuth 2 client on a caller-supplied ``requests.Session``.

    Authlib's ``requests_client.OAuth2Session`` *is* a Session, so it cannot share the
    connection pool (or the test transport) the rest of the client uses. Its generic base
    takes a session instead; these class attributes are exactly what ``OAuth2Session`` sets.
    """

    client_auth_class = OAuth2ClientAuth
    token_auth_class = OAuth2Auth
    oauth_error_class = OAuthError
    SESSION_REQUEST_PARAMS = ("timeout",)


class ZohoOAuth:
    """Talks to Zoho Accounts for one API-console client.

    Authlib builds the consent URL and the form-encoded token requests (with
    ``client_secret_post``, as Zoho documents, and keeping the old refresh token on refresh).
    Its compliance hooks hand us each raw token response first, so Zoho's HTTP-200 errors,
    outage pages and metering are handled here before Authlib parses anything.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        redirect_uri: str | None = None,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        accounts_url: str = "https://accounts.zoho.com",
        extra_accounts_servers: Iterable[str] = (),
        timeout: float = 15.0,
        session: requests.Session | None = None,
        meter: UsageMeter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        # A comma-joined string is accepted too, as it would appear in configuration.
        self.scopes = tuple(scopes.split(",") if isinstance(scopes, str) else scopes)
        self.accounts_url = accounts_url
        self.extra_accounts_servers = tuple(extra_accounts_servers)
        self.timeout = timeout
        self.session = session or requests.Session()
        self.meter = meter
        self._clock = clock

    def __repr__(self) -> str:
        return f"ZohoOAuth(client_id={self.client_id!r}, accounts_url={self.accounts_url!r})"

    # -- consent --------------------------------------------------------------------------

    def trusted(self, accounts_server: str) -> str:
        """``accounts_server`` normalised, or :class:`UnknownAccountsServer`."""
        return trusted_accounts_server(accounts_server, self.extra_accounts_servers)

    def authorization_url(self, state: str, redirect_uri: str | None = None) -> str:
        """Where to send the admin's browser for consent.

        ``access_type=offline`` with ``prompt=consent`` makes Zoho issue a refresh token
        every time, not only on the first consent (reference §1.2).
        """
        target = redirect_uri or self.redirect_uri
        if not target:
            raise ValueError("authorization_url needs a redirect_uri (ZOHO_SYNC_REDIRECT_URI)")
        server = self.trusted(self.accounts_url)
        url, _state = self._token_client().create_authorization_url(
            server + AUTHORIZE_PATH,
            state=state,
            scope=",".join(self.scopes),
            redirect_uri=target,
            access_type="offline",
            prompt="consent",
        )
        return url

    def exchange_code(
        self, code: str, accounts_server: str, redirect_uri: str | None = None
    ) -> TokenSet:
        """Redeem a grant code at the accounts server the consent redirect named.

        The server is checked before anything is sent: the request carries the secret.
        """
        server = self.trusted(accounts_server)
        target = redirect_uri or self.redirect_uri
        if not target:
            raise ValueError("exchange_code needs the redirect_uri used for consent")
        payload = self._token_call(
            server,
            lambda client: client.fetch_token(
                server + TOKEN_PATH,
                grant_type="authorization_code",
                code=code,
                redirect_uri=target,
                timeout=self.timeout,
            ),
        )
        refresh_token = payload.get("refresh_token")
        if not refresh_token:
            raise ZohoReconnectRequired(
                "Zoho issued no refresh token for this consent",
                endpoint=f"POST {TOKEN_PATH}",
                advice="Connect again; the consent must ask for offline access with "
                "prompt=consent (the connect button does).",
            )
        return self._token_set(payload, server, str(refresh_token), previous=None)

    def refresh(self, tokens: TokenSet) -> TokenSet:
        """A new access token from the stored refresh token (which Zoho keeps valid)."""
        if not tokens.refresh_token:
            raise ZohoReconnectRequired("No Zoho refresh token is stored")
        server = self.trusted(tokens.accounts_server)
        payload = self._token_call(
            server,
            lambda client: client.refresh_token(
                server + TOKEN_PATH, refresh_token=tokens.refresh_token, timeout=self.timeout
            ),
        )
        return self._token_set(payload, server, tokens.refresh_token, previous=tokens)

    def revoke(self, tokens: TokenSet) -> bool:
        """Revoke the refresh token (and with it every access token minted from it).

        Returns False when Zoho answers 400, i.e. the token was already invalid: for a
        disconnect that is as good as revoked.

        Plain requests rather than Authlib: Authlib's ``revoke_token`` adds client
        authentication and a ``token_type_hint`` Zoho does not document. The token goes in
        the form body, as the official SDK sends it, not in the URL query the docs show, so
        it cannot end up in access or debug logs that record URLs.
        """
        server = self.trusted(tokens.accounts_server)
        endpoint = f"POST {REVOKE_PATH}"
        started = time.monotonic()
        try:
            response = self.session.post(
                server + REVOKE_PATH,
                data={"token": tokens.refresh_token},
                headers={"Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            self._meter(REVOKE_PATH, None, time.monotonic() - started)
            raise ZohoUnavailable(
                f"Could not reach {server} to revoke the token ({type(exc).__name__})",
                endpoint=endpoint,
            ) from exc
        self._meter(REVOKE_PATH, response.status_code, time.monotonic() - started)
        body = _json_or_none(response)
        if response.status_code == 400:
            return False
        if response.status_code >= 400 or not isinstance(body, dict):
            raise _unexpected_token_reply(response, body, endpoint)
        if body.get("status") != "success":
            raise error_from_response(response.status_code, body, endpoint)
        return True

    # -- internals ------------------------------------------------------------------------

    def _token_client(self) -> _ZohoTokenClient:
        client = _ZohoTokenClient(
            self.session,
            client_id=self.client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_post",
            redirect_uri=self.redirect_uri,
        )
        client.register_compliance_hook("access_token_response", self._inspect_token_reply)
        client.register_compliance_hook("refresh_token_response", self._inspect_token_reply)
        return client

    def _token_call(self, server: str, call: Callable[[_ZohoTokenClient], Any]) -> dict[str, Any]:
        endpoint = f"POST {TOKEN_PATH}"
        started = time.monotonic()
        try:
            token = call(self._token_client())
        except ZohoError:
            raise
        except requests.RequestException as exc:
            self._meter(TOKEN_PATH, None, time.monotonic() - started)
            raise ZohoUnavailable(
                f"Could not reach Zoho's accounts server {server} ({type(exc).__name__})",
                endpoint=endpoint,
            ) from exc
        except OAuthError as exc:  # pragma: no cover - our hook raises first
            raise error_from_response(200, {"error": exc.error}, endpoint) from None
        logger.debug("Zoho token issued by %s", server)
        return dict(token)

    def _inspect_token_reply(self, response: requests.Response) -> requests.Response:
        """Authlib compliance hook: meter the reply and raise on any Zoho error shape."""
        self._meter(TOKEN_PATH, response.status_code, response.elapsed.total_seconds())
        endpoint = f"POST {TOKEN_PATH}"
        body = _json_or_none(response)
        if not isinstance(body, dict) or response.status_code >= 500:
            raise _unexpected_token_reply(response, body, endpoint)
        if "error" in body or response.status_code >= 400:
            raise error_from_response(response.status_code, body, endpoint)
        if not body.get("access_token"):
            raise ZohoMalformedResponse(
                "Zoho's token reply had neither an access token nor an error",
                http_status=response.status_code,
                endpoint=endpoint,
            )
        return response

    def _token_set(
        self, payload: dict[str, Any], server: str, refresh_token: str, previous: TokenSet | None
    ) -> TokenSet:
        lifetime = _lifetime_seconds(payload)
        api_domain = str(payload.get("api_domain") or "").rstrip("/")
        if not api_domain and previous is not None:
            api_domain = previous.api_domain
        if not api_domain:
            dc = data_centre_for(server)
            if dc is None:
                raise ZohoMalformedResponse(
                    "Zoho's token reply did not say which API domain to use",
                    endpoint=f"POST {TOKEN_PATH}",
                )
            api_domain = dc.api_domain
        scope = payload.get("scope")
        return TokenSet(
            refresh_token=refresh_token,
            access_token=str(payload["access_token"]),
            expires_at=self._clock() + lifetime,
            api_domain=api_domain,
            accounts_server=server,
            scope=str(scope) if scope else (previous.scope if previous else None),
        )

    def _meter(self, path: str, status: int | None, duration_s: float) -> None:
        logger.debug(
            "Zoho POST %s -> %s in %.3fs",
            path,
            status if status is not None else "no answer",
            duration_s,
        )
        if self.meter is not None:
            self.meter.record("POST", path, status=status, duration_s=duration_s)


def _lifetime_seconds(payload: dict[str, Any]) -> float:
    """Zoho once sent ``expires_in`` in milliseconds next to ``expires_in_sec``; now only
    ``expires_in`` in seconds. Prefer the unambiguous one (reference §1.4)."""
    for key in ("expires_in_sec", "expires_in"):
        value = payload.get(key)
        try:
            if value is not None and float(value) > 0:
                return float(value)
        except (TypeError, ValueError):
            continue
    return DEFAULT_ACCESS_TOKEN_SECONDS


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _unexpected_token_reply(response: requests.Response, body: Any, endpoint: str) -> ZohoError:
    if response.status_code >= 500:
        return ZohoUnavailable(
            "Zoho's accounts server failed", http_status=response.status_code, endpoint=endpoint
        )
    if isinstance(body, dict):
        return error_from_response(response.status_code, body, endpoint)
    return ZohoMalformedResponse(
        "Zoho's accounts server answered with something other than JSON",
        http_status=response.status_code,
        endpoint=endpoint,
        excerpt=body_excerpt(response.text),
    )


# -- keeping one valid token across processes ----------------------------------------------

LockFactory = Callable[[], AbstractContextManager[Any]]

#: Without a cross-process lock, at least serialise the threads of this process.
_PROCESS_REFRESH_LOCK = threading.Lock()


def redis_lock_factory(
    redis_connection: redis.Redis,
    key: str = "zoho_sync:token-refresh",
    timeout: float = 30,
    blocking_timeout: float = 35,
) -> LockFactory:
    """A lock factory for :class:`TokenManager` backed by redis-py's ``Lock``.

    ``timeout`` frees the lock if its holder dies mid-refresh; ``blocking_timeout`` is a
    little longer so a waiter normally outlasts a slow holder. If Redis itself is down the
    refresh falls back to a process-local lock: nothing else in the sync can run without
    Redis except in-process commands, and failing their refresh would help nobody.
    """

    @contextmanager
    def hold() -> Iterator[None]:
        lock = redis_connection.lock(key, timeout=timeout, blocking_timeout=blocking_timeout)
        try:
            acquired = lock.acquire()
        except redis.exceptions.ConnectionError:
            logger.warning("Redis is unreachable; refreshing the Zoho token under a local lock")
            with _PROCESS_REFRESH_LOCK:
                yield
            return
        if not acquired:
            raise ZohoRetryLater(
                "Timed out waiting for another process to refresh the Zoho access token",
                advice="This is temporary; retry shortly.",
            )
        try:
            yield
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                logger.warning("The Zoho token-refresh lock expired before it was released")

    return hold


class TokenManager:
    """Hands out an access token that is valid for a while, refreshing it rarely.

    Zoho allows ten token refreshes per ten minutes per refresh token, and every worker
    shares one connection. So a refresh happens only when the token is about to expire,
    only inside ``lock_factory()``, and only if, after re-reading the store under the lock,
    no other process has refreshed in the meantime.
    """

    def __init__(
        self,
        oauth: ZohoOAuth,
        store: TokenStore,
        *,
        lock_factory: LockFactory | None = None,
        refresh_margin: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.oauth = oauth
        self.store = store
        self._lock_factory: LockFactory = lock_factory or (lambda: _PROCESS_REFRESH_LOCK)
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._cached: TokenSet | None = None
        #: Lifetime of the last token this manager obtained; caps the margin so a token
        #: shorter-lived than the margin (a test sandbox) is not refreshed on every call.
        self._last_lifetime: float | None = None
        #: A refreshed token the store was too busy to take; :meth:`save_unsaved` saves it.
        self._unsaved: TokenSet | None = None

    def current(self) -> TokenSet:
        """A token set whose access token is valid for more than the refresh margin."""
        cached = self._cached
        if cached is not None and not self._needs_refresh(cached):
            return cached
        stored = self._load()
        if not self._needs_refresh(stored):
            self._cached = stored
            return stored
        return self._refresh_unless_done(seen_access_token=stored.access_token)

    def invalidate(self, stale_access_token: str | None) -> TokenSet:
        """Zoho rejected ``stale_access_token`` (401): get a different one.

        Refreshes unless the store already holds a different, unexpired token (another
        process refreshed after we read ours).
        """
        self._cached = None
        return self._refresh_unless_done(seen_access_token=stale_access_token, force=True)

    # -- internals ------------------------------------------------------------------------

    def _refresh_unless_done(
        self, *, seen_access_token: str | None, force: bool = False
    ) -> TokenSet:
        with self._lock_factory():
            latest = self._load()
            someone_refreshed = (
                latest.access_token is not None
                and latest.access_token != seen_access_token
                and not latest.expires_within(0, now=self._clock())
            )
            if someone_refreshed or (not force and not self._needs_refresh(latest)):
                self._cached = latest
                return latest
            fresh = self.oauth.refresh(latest)
            self._save_or_keep(fresh)
        self._last_lifetime = fresh.expires_at - self._clock()
        self._cached = fresh
        return fresh

    def _save_or_keep(self, tokens: TokenSet) -> None:
        """Save a refreshed token, or keep it for :meth:`save_unsaved` when the store is
        busy.

        A sync on SQLite holds the database's one write lock while it waits for Zoho, and
        the store saves on a connection of its own, so a token refreshed in the middle of
        such a run cannot be saved until the run commits. The token is good all the same.
        Failing the call for want of the save failed the run, and every run after it met
        the same stale stored token and failed the same way.
        """
        try:
            self.store.save(tokens)
        except TokenStoreBusy as exc:
            logger.warning("Zoho's refreshed access token is kept to save later: %s", exc)
            self._unsaved = tokens
        else:
            self._unsaved = None

    def save_unsaved(self) -> bool:
        """Save the token the store was too busy to take when it was refreshed; says whether
        one is still unsaved. A sync run calls this after its last commit.

        A newer token another process saved meanwhile is kept instead, and so is another
        connection (the admin reconnected). Should the store still be busy, the token stays
        in memory, and the next process refreshes its own.
        """
        unsaved = self._unsaved
        if unsaved is None:
            return False
        with self._lock_factory():
            stored = self.store.load()
            if stored is not None and (
                stored.refresh_token != unsaved.refresh_token
                or stored.expires_at >= unsaved.expires_at
            ):
                self._unsaved = None
                return False
            self._save_or_keep(unsaved)
        return self._unsaved is not None

    def _needs_refresh(self, tokens: TokenSet) -> bool:
        margin = self.refresh_margin
        if self._last_lifetime is not None:
            margin = min(margin, self._last_lifetime / 2)
        return tokens.expires_within(margin, now=self._clock())

    def _load(self) -> TokenSet:
        tokens = self.store.load()
        if tokens is None or not tokens.refresh_token:
            raise ZohoReconnectRequired("Zoho CRM is not connected: no refresh token is stored")
        return tokens
