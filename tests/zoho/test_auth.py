"""OAuth against Zoho Accounts, and one shared access token across processes."""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import responses

from flask_zoho_sync.zoho.auth import (
    DEFAULT_SCOPES,
    MemoryTokenStore,
    TokenManager,
    TokenSet,
    TokenStoreBusy,
    ZohoOAuth,
    redis_lock_factory,
)
from flask_zoho_sync.zoho.errors import (
    UnknownAccountsServer,
    ZohoMalformedResponse,
    ZohoReconnectRequired,
    ZohoRetryLater,
    ZohoTokenThrottled,
    ZohoUnavailable,
)
from flask_zoho_sync.zoho.meter import UsageMeter

from .conftest import (
    ACCESS_TOKEN,
    ACCOUNTS,
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    NEW_ACCESS_TOKEN,
    REFRESH_TOKEN,
    TOKEN_URL,
    FakeClock,
    form_of,
    token_reply,
)

# -- consent URL ----------------------------------------------------------------------------


def test_authorization_url_asks_for_offline_access_with_consent(oauth: ZohoOAuth) -> None:
    url = oauth.authorization_url("csrf-state-123")

    parts = urlsplit(url)
    params = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://accounts.zoho.com/oauth/v2/auth"
    )
    assert params == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "https://app.example/zoho/callback",
        "scope": ",".join(DEFAULT_SCOPES),
        "state": "csrf-state-123",
        "access_type": "offline",
        "prompt": "consent",
    }


def test_default_scopes_cover_a_contact_sync() -> None:
    assert set(DEFAULT_SCOPES) == {
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
    }


def test_authorization_url_redirect_can_be_given_per_call(oauth: ZohoOAuth) -> None:
    url = oauth.authorization_url("s", redirect_uri="https://other.example/cb")

    assert parse_qs(urlsplit(url).query)["redirect_uri"] == ["https://other.example/cb"]


def test_authorization_url_refuses_an_untrusted_configured_server() -> None:
    oauth = ZohoOAuth(
        "id", "secret", redirect_uri="https://a/cb", accounts_url="http://127.0.0.1:9"
    )

    with pytest.raises(UnknownAccountsServer):
        oauth.authorization_url("s")


def test_authorization_url_uses_a_listed_sandbox() -> None:
    sandbox = "http://127.0.0.1:8765"
    oauth = ZohoOAuth(
        "id",
        "secret",
        redirect_uri="https://a/cb",
        accounts_url=sandbox,
        extra_accounts_servers=[sandbox],
    )

    assert oauth.authorization_url("s").startswith(f"{sandbox}/oauth/v2/auth?")


# -- code exchange --------------------------------------------------------------------------


def test_code_is_exchanged_at_the_accounts_server_the_redirect_named(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, clock: FakeClock
) -> None:
    rsps.post(
        TOKEN_URL,
        json={**token_reply(), "refresh_token": REFRESH_TOKEN, "scope": "ZohoCRM.modules.ALL"},
    )

    tokens = oauth.exchange_code("1000.grant.code", "https://accounts.zoho.eu")

    assert len(rsps.calls) == 1
    assert rsps.calls[0].request.url == TOKEN_URL
    assert form_of(rsps.calls[0]) == {
        "grant_type": "authorization_code",
        "code": "1000.grant.code",
        "redirect_uri": "https://app.example/zoho/callback",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert tokens.refresh_token == REFRESH_TOKEN
    assert tokens.access_token == NEW_ACCESS_TOKEN
    assert tokens.api_domain == API
    assert tokens.accounts_server == ACCOUNTS
    assert tokens.expires_at == clock.now + 3600
    assert tokens.scope == "ZohoCRM.modules.ALL"


def test_code_exchange_refuses_an_unknown_accounts_server_without_sending_anything(
    oauth: ZohoOAuth, rsps: responses.RequestsMock
) -> None:
    rsps.post("https://evil.example/oauth/v2/token", json=token_reply())

    with pytest.raises(UnknownAccountsServer):
        oauth.exchange_code("1000.grant.code", "https://evil.example")

    assert len(rsps.calls) == 0


def test_used_or_expired_code_arrives_as_http_200_and_requires_reconnecting(
    oauth: ZohoOAuth, rsps: responses.RequestsMock
) -> None:
    rsps.post(TOKEN_URL, json={"error": "invalid_code"}, status=200)

    with pytest.raises(ZohoReconnectRequired) as caught:
        oauth.exchange_code("1000.old.code", ACCOUNTS)

    assert caught.value.code == "invalid_code"


def test_wrong_data_centre_client_error_requires_reconnecting(
    oauth: ZohoOAuth, rsps: responses.RequestsMock
) -> None:
    rsps.post(TOKEN_URL, json={"error": "invalid_client"}, status=200)

    with pytest.raises(ZohoReconnectRequired, match="data centre"):
        oauth.exchange_code("1000.code", ACCOUNTS)


def test_exchange_without_a_refresh_token_requires_reconnecting(
    oauth: ZohoOAuth, rsps: responses.RequestsMock
) -> None:
    rsps.post(TOKEN_URL, json=token_reply())

    with pytest.raises(ZohoReconnectRequired, match="no refresh token"):
        oauth.exchange_code("1000.code", ACCOUNTS)


# -- refresh --------------------------------------------------------------------------------


def test_refresh_posts_a_form_to_the_stored_accounts_server_and_keeps_the_refresh_token(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet, clock: FakeClock
) -> None:
    rsps.post(TOKEN_URL, json=token_reply())

    fresh = oauth.refresh(valid_tokens)

    assert form_of(rsps.calls[0]) == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert (
        rsps.calls[0]
        .request.headers["Content-Type"]
        .startswith("application/x-www-form-urlencoded")
    )
    assert fresh.refresh_token == REFRESH_TOKEN
    assert fresh.access_token == NEW_ACCESS_TOKEN
    assert fresh.expires_at == clock.now + 3600
    assert fresh.scope == valid_tokens.scope


def test_refresh_prefers_expires_in_sec_over_millisecond_expires_in(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet, clock: FakeClock
) -> None:
    rsps.post(TOKEN_URL, json={**token_reply(), "expires_in": 3600000, "expires_in_sec": 3600})

    assert oauth.refresh(valid_tokens).expires_at == clock.now + 3600


def test_refresh_fills_in_api_domain_when_the_reply_omits_it(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    reply = token_reply()
    del reply["api_domain"]
    rsps.post(TOKEN_URL, json=reply)
    blank = replace(valid_tokens, api_domain="")

    assert oauth.refresh(valid_tokens).api_domain == API
    assert oauth.refresh(blank).api_domain == "https://www.zohoapis.eu"


def test_token_throttle_body_is_retry_later(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    rsps.post(
        TOKEN_URL,
        json={
            "error_description": "You have made too many requests continuously. "
            "Please try again after some time.",
            "error": "Access Denied",
            "status": "failure",
        },
    )

    with pytest.raises(ZohoTokenThrottled):
        oauth.refresh(valid_tokens)


def test_refresh_with_a_revoked_refresh_token_requires_reconnecting(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    rsps.post(TOKEN_URL, json={"error": "invalid_code"})

    with pytest.raises(ZohoReconnectRequired):
        oauth.refresh(valid_tokens)


def test_http_200_without_an_access_token_is_malformed(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    rsps.post(TOKEN_URL, json={"api_domain": API, "token_type": "Bearer"})

    with pytest.raises(ZohoMalformedResponse):
        oauth.refresh(valid_tokens)


def test_accounts_outage_page_is_unavailable(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    rsps.post(TOKEN_URL, body="<html>502 Bad Gateway</html>", status=502, content_type="text/html")

    with pytest.raises(ZohoUnavailable):
        oauth.refresh(valid_tokens)


def test_accounts_html_reply_with_200_is_malformed(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    rsps.post(TOKEN_URL, body="<html>Sign in</html>", status=200, content_type="text/html")

    with pytest.raises(ZohoMalformedResponse) as caught:
        oauth.refresh(valid_tokens)

    assert "Sign in" in caught.value.excerpt


def test_unreachable_accounts_server_is_unavailable(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    import requests

    rsps.post(TOKEN_URL, body=requests.ConnectionError("refused"))

    with pytest.raises(ZohoUnavailable):
        oauth.refresh(valid_tokens)


def test_refresh_refuses_a_stored_server_that_is_no_longer_trusted(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    with pytest.raises(UnknownAccountsServer):
        oauth.refresh(replace(valid_tokens, accounts_server="https://evil.example"))

    assert len(rsps.calls) == 0


def test_token_calls_are_metered_at_zero_credits(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet, meter: UsageMeter
) -> None:
    rsps.post(TOKEN_URL, json=token_reply())

    oauth.refresh(valid_tokens)

    snapshot = meter.snapshot()
    assert snapshot["calls"] == {"POST /oauth/v2/token": 1}
    assert snapshot["credits"] == {"POST /oauth/v2/token": 0}


# -- revoke ---------------------------------------------------------------------------------


def test_revoke_posts_the_refresh_token_to_the_revoke_endpoint(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    rsps.post(f"{ACCOUNTS}/oauth/v2/token/revoke", json={"status": "success"})

    assert oauth.revoke(valid_tokens) is True

    call = rsps.calls[0]
    assert urlsplit(call.request.url).path == "/oauth/v2/token/revoke"
    assert form_of(call) == {"token": REFRESH_TOKEN}
    assert REFRESH_TOKEN not in call.request.url


def test_revoking_an_already_invalid_token_reports_false(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    rsps.post(f"{ACCOUNTS}/oauth/v2/token/revoke", json={"status": "failure"}, status=400)

    assert oauth.revoke(valid_tokens) is False


# -- TokenSet -------------------------------------------------------------------------------


def test_token_set_repr_hides_both_tokens(valid_tokens: TokenSet) -> None:
    text = repr(valid_tokens)

    assert REFRESH_TOKEN not in text
    assert ACCESS_TOKEN not in text
    assert API in text


def test_expires_within_treats_a_missing_access_token_as_expired(valid_tokens: TokenSet) -> None:
    now = valid_tokens.expires_at - 100

    assert valid_tokens.expires_within(300, now=now)
    assert not valid_tokens.expires_within(50, now=now)
    assert replace(valid_tokens, access_token=None).expires_within(0, now=now)


# -- TokenManager ---------------------------------------------------------------------------


def test_valid_token_is_returned_without_refreshing(
    manager: TokenManager, rsps: responses.RequestsMock
) -> None:
    assert manager.current().access_token == ACCESS_TOKEN
    assert manager.current().access_token == ACCESS_TOKEN
    assert len(rsps.calls) == 0


def test_token_is_refreshed_shortly_before_it_expires(
    manager: TokenManager,
    rsps: responses.RequestsMock,
    store: MemoryTokenStore,
    clock: FakeClock,
    valid_tokens: TokenSet,
) -> None:
    rsps.post(TOKEN_URL, json=token_reply())
    clock.now = valid_tokens.expires_at - 301
    assert manager.current().access_token == ACCESS_TOKEN

    clock.now = valid_tokens.expires_at - 299
    fresh = manager.current()

    assert fresh.access_token == NEW_ACCESS_TOKEN
    assert len(rsps.calls) == 1
    stored = store.load()
    assert stored is not None
    assert stored.access_token == NEW_ACCESS_TOKEN
    assert stored.refresh_token == REFRESH_TOKEN


class BusyOnceStore(MemoryTokenStore):
    """Refuses its first ``busy`` saves, as the database does while a sync run holds
    SQLite's write lock."""

    def __init__(self, tokens: TokenSet, busy: int = 1) -> None:
        super().__init__(tokens)
        self.busy = busy

    def save(self, tokens: TokenSet) -> None:
        if self.busy:
            self.busy -= 1
            raise TokenStoreBusy("database is locked")
        super().save(tokens)


def _refreshed_while_busy(
    oauth: ZohoOAuth,
    rsps: responses.RequestsMock,
    tokens: TokenSet,
    clock: FakeClock,
    busy: int = 1,
) -> tuple[BusyOnceStore, TokenManager, TokenSet]:
    """Zoho refused the stored token mid-run, and the store refused the refreshed one."""
    store = BusyOnceStore(tokens, busy=busy)
    manager = TokenManager(oauth, store, clock=clock)
    rsps.post(TOKEN_URL, json=token_reply())
    return store, manager, manager.invalidate(ACCESS_TOKEN)


def test_a_token_the_store_is_too_busy_to_take_is_used_and_saved_later(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet, clock: FakeClock
) -> None:
    store, manager, fresh = _refreshed_while_busy(oauth, rsps, valid_tokens, clock)
    assert fresh.access_token == NEW_ACCESS_TOKEN
    assert manager.current().access_token == NEW_ACCESS_TOKEN  # no second refresh
    assert store.load() == valid_tokens  # not saved yet

    assert manager.save_unsaved() is False  # the run committed: nothing left unsaved
    saved = store.load()
    assert saved is not None and saved.access_token == NEW_ACCESS_TOKEN
    assert len(rsps.calls) == 1
    assert manager.save_unsaved() is False and store.saves == 1


def test_a_token_the_store_is_still_too_busy_to_take_stays_in_memory(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, valid_tokens: TokenSet, clock: FakeClock
) -> None:
    store, manager, _ = _refreshed_while_busy(oauth, rsps, valid_tokens, clock, busy=2)
    assert manager.save_unsaved() is True  # still busy: said, not raised
    assert manager.current().access_token == NEW_ACCESS_TOKEN
    assert store.load() == valid_tokens and len(rsps.calls) == 1


@pytest.mark.parametrize(
    ("changes", "lives"),
    [
        pytest.param({"access_token": "1000.other"}, 7200, id="another process's newer token"),
        pytest.param({"refresh_token": "1000.new-grant"}, 60, id="a new connection"),
    ],
)
def test_an_unsaved_token_never_overwrites_what_was_stored_since(
    oauth: ZohoOAuth,
    rsps: responses.RequestsMock,
    valid_tokens: TokenSet,
    clock: FakeClock,
    changes: dict[str, str],
    lives: int,
) -> None:
    store, manager, _ = _refreshed_while_busy(oauth, rsps, valid_tokens, clock)
    stored_since = replace(valid_tokens, expires_at=clock.now + lives, **changes)
    MemoryTokenStore.save(store, stored_since)
    assert manager.save_unsaved() is False
    assert store.load() == stored_since


def test_token_shorter_lived_than_the_margin_is_not_refreshed_on_every_call(
    manager: TokenManager, rsps: responses.RequestsMock, clock: FakeClock, valid_tokens: TokenSet
) -> None:
    rsps.post(TOKEN_URL, json=token_reply(expires_in=120))
    clock.now = valid_tokens.expires_at

    manager.current()
    manager.current()
    clock.now += 30
    manager.current()

    assert len(rsps.calls) == 1


def test_missing_connection_requires_connecting(oauth: ZohoOAuth) -> None:
    manager = TokenManager(oauth, MemoryTokenStore())

    with pytest.raises(ZohoReconnectRequired, match="no refresh token"):
        manager.current()


def test_refresh_skips_when_the_store_already_holds_a_newer_token(
    oauth: ZohoOAuth, rsps: responses.RequestsMock, clock: FakeClock, valid_tokens: TokenSet
) -> None:
    """Another process refreshed between our read and our taking the lock."""
    store = MemoryTokenStore(replace(valid_tokens, expires_at=clock.now + 10))
    newer = replace(valid_tokens, access_token=NEW_ACCESS_TOKEN, expires_at=clock.now + 3600)

    def lock_that_lets_another_process_win() -> AbstractContextManager[None]:
        store.save(newer)
        return threading.Lock()

    manager = TokenManager(
        oauth, store, lock_factory=lock_that_lets_another_process_win, clock=clock
    )

    assert manager.current().access_token == NEW_ACCESS_TOKEN
    assert len(rsps.calls) == 0


def test_invalidate_refreshes_the_rejected_token(
    manager: TokenManager, rsps: responses.RequestsMock
) -> None:
    rsps.post(TOKEN_URL, json=token_reply())

    assert manager.invalidate(ACCESS_TOKEN).access_token == NEW_ACCESS_TOKEN
    assert len(rsps.calls) == 1


def test_invalidate_takes_a_token_another_process_already_replaced(
    manager: TokenManager, rsps: responses.RequestsMock, store: MemoryTokenStore
) -> None:
    stored = store.load()
    assert stored is not None
    store.save(replace(stored, access_token=NEW_ACCESS_TOKEN))

    assert manager.invalidate(ACCESS_TOKEN).access_token == NEW_ACCESS_TOKEN
    assert len(rsps.calls) == 0


@pytest.mark.redis
def test_concurrent_managers_sharing_a_store_refresh_exactly_once(
    redis_client: redis.Redis, rsps: responses.RequestsMock, valid_tokens: TokenSet
) -> None:
    """Two "processes" (managers with their own OAuth clients) and eight threads all find
    the token expiring at once; the Redis lock lets exactly one of them refresh."""
    store = MemoryTokenStore(replace(valid_tokens, expires_at=time.time() + 5))

    def slow_token_endpoint(_request: object) -> tuple[int, dict[str, str], str]:
        time.sleep(0.2)  # widen the window in which a second refresh could slip in
        import json

        return 200, {"Content-Type": "application/json"}, json.dumps(token_reply())

    rsps.add_callback(responses.POST, TOKEN_URL, callback=slow_token_endpoint)
    managers = [
        TokenManager(
            ZohoOAuth(CLIENT_ID, CLIENT_SECRET),
            store,
            lock_factory=redis_lock_factory(redis_client, key="test:token-refresh"),
        )
        for _ in range(2)
    ]
    start = threading.Barrier(8)
    seen: list[str | None] = []
    failures: list[BaseException] = []

    def worker(manager: TokenManager) -> None:
        try:
            start.wait()
            seen.append(manager.current().access_token)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(managers[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert failures == []
    assert len(rsps.calls) == 1
    assert seen == [NEW_ACCESS_TOKEN] * 8
    assert store.saves == 1


@pytest.mark.redis
def test_waiting_too_long_for_the_refresh_lock_is_retry_later(
    redis_client: redis.Redis, oauth: ZohoOAuth, valid_tokens: TokenSet
) -> None:
    factory = redis_lock_factory(redis_client, key="test:held", timeout=5, blocking_timeout=0.1)
    holder = redis_client.lock("test:held", timeout=5)
    assert holder.acquire()
    manager = TokenManager(
        oauth, MemoryTokenStore(replace(valid_tokens, access_token=None)), lock_factory=factory
    )
    try:
        with pytest.raises(ZohoRetryLater, match="another process"):
            manager.current()
    finally:
        holder.release()


@pytest.mark.redis
def test_redis_lock_is_released_after_the_refresh(
    redis_client: redis.Redis, rsps: responses.RequestsMock, oauth: ZohoOAuth
) -> None:
    factory = redis_lock_factory(redis_client, key="test:released")

    with factory():
        assert redis_client.exists("test:released")

    assert not redis_client.exists("test:released")


def test_scopes_given_as_a_comma_joined_string_are_split() -> None:
    oauth = ZohoOAuth("id", "secret", scopes="ZohoCRM.modules.ALL,ZohoCRM.org.READ")

    assert oauth.scopes == ("ZohoCRM.modules.ALL", "ZohoCRM.org.READ")
