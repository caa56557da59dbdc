"""The stored Zoho connection: tokens in the database (encrypted) and the client built on them.

The Zoho client only knows a ``TokenStore`` protocol; this module is the database-backed
implementation and the place where the extension assembles OAuth, the token manager (with a
Redis lock so only one process refreshes at a time) and the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .crypto import TokenVault
from .errors import NotConnectedError
from .models import Connection
from .schema import MissingTablesError, is_busy, is_missing_table, missing_tables
from .tenancy import ALL_TENANTS, current_tenant, tenant_context
from .zoho.auth import TokenSet, TokenStoreBusy


class DatabaseTokenStore:
    """Keeps the connection's tokens in ``zoho_sync_connection``, encrypted.

    Each load and save runs in its own short transaction on the engine, never in the host's
    session: a refreshed token must be saved even when the surrounding sync run rolls back,
    or the next process would refresh again and eat into Zoho's ten-per-ten-minutes limit.
    """

    def __init__(
        self,
        engine_getter: Callable[[], sa.Engine],
        vault: TokenVault,
        *,
        tenant: str | None = None,
    ) -> None:
        self._engine_getter = engine_getter
        self._vault = vault
        #: Whose connection this is, fixed when the store is made: the token manager loads
        #: and saves from the client's worker threads too, whatever tenant they run as.
        self.tenant = tenant or current_tenant()

    def load(self) -> TokenSet | None:
        with tenant_context(self.tenant), Session(self._engine_getter()) as session:
            try:
                row = session.scalars(sa.select(Connection).order_by(Connection.id)).first()
            except sa.exc.DBAPIError as exc:
                self._raise_for_missing_tables(exc)
                raise
            if row is None:
                return None
            return TokenSet(
                refresh_token=self._vault.decrypt(row.refresh_token_encrypted),
                access_token=(
                    self._vault.decrypt(row.access_token_encrypted)
                    if row.access_token_encrypted
                    else None
                ),
                expires_at=row.expires_at or 0.0,
                api_domain=row.api_domain,
                accounts_server=row.accounts_server,
                scope=row.scope,
            )

    def save(self, tokens: TokenSet) -> None:
        try:
            self._save(tokens)
        except sa.exc.DBAPIError as exc:
            self._raise_for_missing_tables(exc)
            if is_busy(exc):
                # SQLite's "database is locked" (PostgreSQL's lock_not_available): a write
                # in progress holds the lock, most often the sync run that is waiting for
                # Zoho. The token manager saves after the run.
                raise TokenStoreBusy(str(exc.orig)) from exc
            raise

    def _raise_for_missing_tables(self, exc: sa.exc.DBAPIError) -> None:
        """A fresh database is no busy one: say which tables to create, not "try later"."""
        if is_missing_table(exc):
            engine = self._engine_getter()
            raise MissingTablesError(
                missing_tables(engine, None) or [Connection.__tablename__]
            ) from None

    def _save(self, tokens: TokenSet) -> None:
        with (
            tenant_context(self.tenant),
            Session(self._engine_getter()) as session,
            session.begin(),
        ):
            row = session.scalars(sa.select(Connection).order_by(Connection.id)).first()
            if row is None:
                row = Connection()
                session.add(row)
            row.refresh_token_encrypted = self._vault.encrypt(tokens.refresh_token)
            row.access_token_encrypted = (
                self._vault.encrypt(tokens.access_token) if tokens.access_token else None
            )
            row.expires_at = tokens.expires_at
            row.api_domain = tokens.api_domain
            row.accounts_server = tokens.accounts_server
            row.scope = tokens.scope


@dataclass(frozen=True)
class ConnectedAccount:
    """Who and where we are connected to, as shown to the admin."""

    accounts_server: str
    api_domain: str
    location: str | None
    user_email: str | None
    user_name: str | None
    org_id: str | None
    org_name: str | None
    org_time_zone: str | None
    org_domain: str | None = None


def describe_connection(session: Session) -> ConnectedAccount | None:
    row = session.scalars(sa.select(Connection).order_by(Connection.id)).first()
    if row is None:
        return None
    return ConnectedAccount(
        accounts_server=row.accounts_server,
        api_domain=row.api_domain,
        location=row.location,
        user_email=row.zoho_user_email,
        user_name=row.zoho_user_name,
        org_id=row.org_id,
        org_name=row.org_name,
        org_time_zone=row.org_time_zone,
        org_domain=row.org_domain,
    )


def require_connection(session: Session) -> ConnectedAccount:
    account = describe_connection(session)
    if account is None:
        raise NotConnectedError()
    return account


def store_account_details(session: Session, *, location: str | None, org: dict, user: dict) -> None:
    """Record the org and user we connected as, after the tokens are stored."""
    row = session.scalars(sa.select(Connection).order_by(Connection.id)).first()
    if row is None:
        raise NotConnectedError()
    row.location = location
    row.org_id = str(org.get("id")) if org.get("id") is not None else None
    row.org_name = org.get("company_name")
    row.org_domain = org.get("domain_name")
    row.org_time_zone = org.get("time_zone")
    row.zoho_user_id = str(user.get("id")) if user.get("id") is not None else None
    row.zoho_user_email = user.get("email")
    row.zoho_user_name = user.get("full_name")
    row.connected_at = datetime.now(timezone.utc)  # a new refresh token from now on


#: Zoho keeps this many refresh tokens per user and client; issuing one more silently
#: revokes the oldest (reference §1, Kaizen #43).
REFRESH_TOKENS_PER_USER = 20
#: From this many connections as one user, connecting says how close the limit is.
REFRESH_TOKENS_WARN_AT = 18


def sites_sharing_user(session: Session, row: Connection) -> list[str]:
    """The tenants connected as the same Zoho user of the same data centre as ``row``
    (its own included), the longest connected first: this app's refresh tokens of that user.

    Every tenant of a host connects through the same Zoho client, so a platform whose sites
    are all connected by one Zoho user spends that user's refresh tokens, one a site."""
    if not row.zoho_user_id:
        return [row.tenant_id]
    return list(
        session.scalars(
            sa.select(Connection.tenant_id)
            .where(
                Connection.zoho_user_id == row.zoho_user_id,
                Connection.accounts_server == row.accounts_server,
            )
            .order_by(Connection.connected_at, Connection.id)
            .execution_options(**{ALL_TENANTS: True})
        )
    )


def refresh_token_warning(session: Session, row: Connection) -> str | None:
    """What the admin who has just connected ``row`` should know about Zoho's 20 refresh
    tokens per user (None: nothing, the usual case)."""
    sites = sites_sharing_user(session, row)
    if len(sites) < REFRESH_TOKENS_WARN_AT:
        return None
    who = row.zoho_user_email or row.zoho_user_name or "this Zoho user"
    limit = REFRESH_TOKENS_PER_USER
    if len(sites) <= limit:
        return (
            f"{len(sites)} sites of this app are connected as {who}. Zoho keeps at most "
            f"{limit} refresh tokens per user for an app, and the {limit + 1}st silently "
            "revokes the oldest: connect further sites as another Zoho user."
        )
    lost = [site for site in sites[: len(sites) - limit] if site != row.tenant_id]
    named = ", ".join(lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
    return (
        f"{len(sites)} sites of this app are connected as {who}, and Zoho keeps at most "
        f"{limit} refresh tokens per user for an app: connecting this one revoked the oldest. "
        f"The sites connected longest ago ({named}) have most likely lost their connection; "
        "their next run will say so. Connect them again as another Zoho user."
    )


def forget_connection(session: Session) -> None:
    session.execute(sa.delete(Connection))
