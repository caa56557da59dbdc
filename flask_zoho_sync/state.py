"""``ZohoSyncState``: one app's sync services, assembled by ``ZohoSync.init_app``.

It lives in ``app.extensions["zoho_sync"]``. The faces (the admin pages, the CLI, the RQ
jobs) read it from there, from the app they serve, and hand it (or the part of it that is
needed) down as an argument; nothing below the faces looks it up, so this module imports
none of them and no room below it reaches back up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import redis
import sqlalchemy as sa
from flask import Flask, current_app, has_app_context
from sqlalchemy.orm import Session

from .adapter import ContactAdapter
from .capture import suppress_capture
from .config import ZohoSyncConfig
from .connection import DatabaseTokenStore, store_account_details
from .crypto import TokenVault
from .drift import fields_outdated, pause_rows_zoho_refuses
from .errors import ConfigurationError
from .ledger import CREDIT_WINDOW, Ledger, org_credits_spent_since
from .models import ApiUsage, Connection, FieldMap, SyncSettings
from .preferences import (
    build_mapping,
    get_settings,
    has_fresh_zoho_fields,
    refresh_zoho_fields,
    write_rules,
)
from .scope import read_scope
from .signals import (
    connection_lost,
    connection_restored,
    credit_budget_low,
    field_paused,
    mass_delete_blocked,
    record_failed,
    run_finished,
    run_started,
    send,
)
from .sync.context import EngineOptions, ProgressCallback, RunReport
from .sync.engine import SyncEngine
from .sync.notified import NotifiedWrite
from .tenancy import DEFAULT_TENANT, TenantResolver, current_tenant
from .zoho.auth import (
    DEFAULT_SCOPES,
    RECYCLE_BIN_SCOPE,
    TokenManager,
    TokenSet,
    ZohoOAuth,
    redis_lock_factory,
)
from .zoho.bulk import BulkClient
from .zoho.client import ZohoClient
from .zoho.credits import CreditBudget
from .zoho.datacentres import data_centre_for
from .zoho.errors import ZohoError, ZohoReconnectRequired
from .zoho.meter import UsageMeter
from .zoho.running_credits import RedisRunningCredits
from .zoho.slots import RedisCallSlots, lease_for

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

#: Where ``init_app`` keeps the state: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "zoho_sync"

#: How long the set of watched contact attributes and the auto-sync flag are cached per
#: process: they are read on the host's commit path, which must stay cheap.
PREFERENCES_TTL = 5.0

AdminCheck = Callable[[], bool]
#: The host's mail sender for alerts: ``send_mail(subject=..., body=..., recipients=[...])``.
SendMail = Callable[..., Any]


class ZohoSyncState:
    """Everything one app's sync needs, assembled from its settings."""

    def __init__(
        self,
        config: ZohoSyncConfig,
        db: SQLAlchemy,
        vault: TokenVault,
        *,
        adapter: ContactAdapter,
        admin_check: AdminCheck | None,
        send_mail: SendMail | None = None,
        tenant_resolver: TenantResolver | None = None,
    ) -> None:
        self.config = config
        #: The host's answer to "which tenant is this request for?" (None: one tenant).
        self.tenant_resolver = tenant_resolver
        self.send_mail = send_mail
        self.db = db
        self.vault = vault
        self.adapter = adapter
        self.admin_check = admin_check
        #: Zoho calls and credits not yet moved into the usage table, per tenant: a
        #: threaded server can call Zoho for two tenants at once.
        self._meters: dict[str, UsageMeter] = {}
        self._redis: redis.Redis | None = None
        self._watched: tuple[float, frozenset[str]] = (0.0, frozenset())
        #: Whether automatic sync is on, per tenant, with when it was read.
        self._auto_sync: dict[str, tuple[float, bool]] = {}

    @property
    def meter(self) -> UsageMeter:
        """The current tenant's meter of Zoho calls and credits."""
        return self._meters.setdefault(current_tenant(), UsageMeter())

    # -- change capture -----------------------------------------------------------------

    def watched_attributes(self) -> frozenset[str]:
        """The contact attributes whose change must reach Zoho: the mapped fields (every
        mappable field until a mapping exists), the groups and the subscription status."""
        stamp, cached = self._watched
        if time.monotonic() - stamp < PREFERENCES_TTL:
            return cached
        with self.db.engine.connect() as connection:
            mapped = {
                host_key
                for kind, host_key in connection.execute(
                    sa.select(FieldMap.kind, FieldMap.host_key)
                )
                if kind == "field"
            }
        fields = mapped or {field.name for field in self.adapter.fields()}
        extra = self.adapter.capture_attributes()
        watched = frozenset(fields | extra)
        self._watched = (time.monotonic(), watched)
        return watched

    def auto_sync_enabled(self) -> bool:
        """Whether the current tenant's automatic sync is on (read at most every few
        seconds: capture asks on every host commit)."""
        tenant = current_tenant()
        stamp, cached = self._auto_sync.get(tenant, (0.0, False))
        if time.monotonic() - stamp < PREFERENCES_TTL:
            return cached
        with self.db.engine.connect() as connection:
            enabled = bool(
                connection.scalar(
                    sa.select(SyncSettings.auto_sync).where(
                        SyncSettings.tenant_id == tenant, SyncSettings.module.is_not(None)
                    )
                )
            )
        self._auto_sync[tenant] = (time.monotonic(), enabled)
        return enabled

    def preferences_changed(self) -> None:
        """Forget cached preferences (the mapping or automatic sync just changed here)."""
        self._watched = (0.0, frozenset())
        self._auto_sync.clear()

    # -- infrastructure -------------------------------------------------------------------

    def redis(self) -> redis.Redis:
        """The Redis connection for locks and jobs (created on first use, not at start-up,
        so an app without Redis still starts and serves its own pages)."""
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.config.redis_url)
        return self._redis

    def token_store(self) -> DatabaseTokenStore:
        """The database-backed token store. The engine is looked up now, in the app context,
        because the push refreshes tokens from worker threads, which have none."""
        if has_app_context():
            engine = self.db.engine
            return DatabaseTokenStore(lambda: engine, self.vault, tenant=current_tenant())
        return DatabaseTokenStore(lambda: self.db.engine, self.vault, tenant=current_tenant())

    def oauth(self, redirect_uri: str | None = None) -> ZohoOAuth:
        return ZohoOAuth(
            self.config.client_id,
            self.config.client_secret,
            redirect_uri=redirect_uri or self.config.redirect_uri,
            accounts_url=self.config.accounts_url,
            extra_accounts_servers=self.config.extra_accounts_servers,
            timeout=self.config.http_timeout,
            meter=self.meter,
            scopes=self.scopes,
        )

    @property
    def scopes(self) -> tuple[str, ...]:
        """What the connection asks Zoho for: the sync's scopes, and the recycle bin's when
        a revert may restore from it (``ZOHO_SYNC_REVERT_FROM_RECYCLE_BIN``)."""
        if self.config.revert_from_recycle_bin:
            return (*DEFAULT_SCOPES, RECYCLE_BIN_SCOPE)
        return DEFAULT_SCOPES

    def token_manager(self) -> TokenManager:
        return TokenManager(
            self.oauth(),
            self.token_store(),
            lock_factory=redis_lock_factory(self.redis(), self._refresh_lock_key()),
        )

    def client(self, *, budget: CreditBudget | None = None) -> ZohoClient:
        """A Zoho client on the stored connection (raises on first call if there is none).

        Its calls take the org's call slots in Redis, so every worker and page of every app
        on this Zoho org keeps together to ZOHO_SYNC_ORG_CONCURRENCY calls at once.
        """
        timeout = (5.0, self.config.http_timeout)
        return ZohoClient(
            self.token_manager(),
            timeout=timeout,
            trigger=("workflow", "approval", "blueprint") if self.config.trigger_workflows else (),
            meter=self.meter,
            budget=budget,
            max_connections=self.config.max_concurrency,
            call_slots=RedisCallSlots(
                self.redis(),
                self.call_slots_key(),
                self.config.org_concurrency,
                lease_seconds=lease_for(timeout),
            ),
        )

    @staticmethod
    def _refresh_lock_key() -> str:
        """One refresh at a time per tenant's connection (each holds its own token)."""
        tenant = current_tenant()
        if tenant == DEFAULT_TENANT:
            return "zoho_sync:token-refresh"
        return f"zoho_sync:token-refresh:{tenant}"

    def call_slots_key(self) -> str:
        """The Redis key of the org's call slots: Zoho counts concurrent calls per org and
        app (client id), so that is what the key names. Before the org is known (the first
        calls of a connect) the calls share the app's "unconnected" slots."""
        org_id = self._connected_org_id()
        return f"zoho_sync:call-slots:{self.config.client_id}:{org_id or 'unconnected'}"

    def _connected_org_id(self) -> str | None:
        """The current tenant's Zoho org id, read on a connection of its own (None: not
        connected, or no tables yet)."""
        try:
            with self.db.engine.connect() as connection:
                return connection.scalar(
                    sa.select(Connection.org_id)
                    .where(Connection.tenant_id == current_tenant())
                    .order_by(Connection.id)
                    .limit(1)
                )
        except sa.exc.SQLAlchemyError:
            return None

    def _running_credits(self) -> RedisRunningCredits | None:
        """This run's tally among the org's runs going on now (None before the org is
        known): with several workers, two sites on one org can run at once, and neither's
        credits are in the database until it ends (``zoho.running_credits``)."""
        org_id = self._connected_org_id()
        if not org_id:
            return None
        return RedisRunningCredits(
            self.redis(), f"zoho_sync:credits-running:{self.config.client_id}:{org_id}"
        )

    def credit_budget(self) -> CreditBudget | None:
        """What the sync may still spend under ZOHO_SYNC_DAILY_CREDIT_BUDGET and
        ZOHO_SYNC_CREDIT_RESERVE (None: neither is set).

        Zoho's window is a rolling 24 hours, so is this one: the credits of the runs that
        started in the last day count, and the oldest of them frees its credits first.
        Zoho rations them per org, so the runs of every tenant connected to this tenant's
        org count (``ledger.org_credits_spent_since``): the budget is the org's.
        """
        limit = self.config.daily_credit_budget
        keep = self.config.credit_reserve
        if not limit and not keep:
            return None
        now = datetime.now(timezone.utc)
        spent, oldest, by_others = org_credits_spent_since(self.db.session, now - CREDIT_WINDOW)
        # With no earlier spending in the window, this run's own credits free up first.
        return CreditBudget(
            limit or None,
            spent,
            (oldest or now) + CREDIT_WINDOW,
            keep_for_others=keep,
            spent_by_others=by_others,
            running=self._running_credits() if limit else None,
        )

    # -- connecting -----------------------------------------------------------------------

    def connect(self, tokens: TokenSet, *, location: str | None = None) -> Connection:
        """Store fresh tokens, then ask Zoho who and where we are.

        The org and user are fetched right away because the admin pages show them and the
        time-zone warning needs the org's zone; a token that cannot read them is reported
        now rather than on the first sync.
        """
        store = self.token_store()
        store.save(tokens)
        client = self.client()
        org = client.org()
        user = client.current_user()
        session: Session = self.db.session
        store_account_details(session, location=location, org=org, user=user)
        session.commit()
        row = session.scalars(sa.select(Connection)).one()
        self.record_usage(session)
        send(connection_restored, _sender())
        return row

    def connect_with_refresh_token(self, refresh_token: str, accounts_server: str) -> Connection:
        oauth = self.oauth()
        tokens = oauth.refresh(
            TokenSet(
                refresh_token=refresh_token,
                access_token=None,
                expires_at=0.0,
                api_domain="",
                accounts_server=accounts_server,
            )
        )
        centre = data_centre_for(tokens.accounts_server)
        return self.connect(tokens, location=centre.location if centre else None)

    # -- syncing --------------------------------------------------------------------------

    def sync_engine(
        self,
        *,
        dry_run: bool = False,
        confirm_deletes: bool = False,
        on_progress: ProgressCallback | None = None,
        plan_changes: int | None = None,
        outbox_slice: int = 0,
    ) -> SyncEngine:
        """An engine on the stored connection, settings and mapping.

        Zoho's field metadata is fetched (one call) when none is cached for the module, so
        the first sync after choosing a module works without a visit to the mapping editor.
        """
        session: Session = self.db.session
        settings = get_settings(session)
        client = self.client(budget=self.credit_budget())
        if settings.module and (
            not has_fresh_zoho_fields(settings, session)
            or fields_outdated(settings, self.config.fields_max_age)
        ):
            refresh_zoho_fields(session, client, settings)  # follows renames (drift.py)
            session.commit()
        ledger = Ledger(session, settings)
        sender = _sender()
        announce_pause = _pause_announcer(sender, settings.module)
        if not dry_run:
            ledger.on_failed_record = _failed_record_announcer(sender)
            ledger.on_mapping_paused = announce_pause
        ledger.pin_settings()  # the values this run's mapping is built from
        mapping = build_mapping(session, self.adapter)
        paused = [] if dry_run else pause_rows_zoho_refuses(session, mapping)
        if paused:
            session.commit()  # the reasons show on the overview while the run goes on
            for row in paused:
                announce_pause(row.zoho_field, row.host_key, row.paused_reason or "")
        bulk = None
        if self.config.bulk_threshold:  # a dry run sends no job; it prices the ones it plans
            bulk = BulkClient(
                client,
                poll_interval=self.config.bulk_poll_interval,
                max_poll_interval=max(60.0, self.config.bulk_poll_interval),
                timeout=self.config.bulk_timeout,
            )
        return SyncEngine(
            client=client,
            bulk=bulk,
            adapter=self.adapter,
            ledger=ledger,
            mapping=mapping,
            options=EngineOptions(
                dry_run=dry_run,
                confirm_deletes=confirm_deletes,
                mass_delete_share=self.config.mass_delete_share,
                bulk_threshold=self.config.bulk_threshold,
                max_concurrency=self.config.max_concurrency,
                outbox_slice=outbox_slice,
                pull_with_coql=self.config.pull_with_coql,
                plan_changes=plan_changes,
                on_lead_conversion=self.config.on_lead_conversion,
                rules=write_rules(session, settings, self.config.sync_mode),
                scope=read_scope(session, current_app.config),
            ),
            host_writes=lambda: suppress_capture(session),
            on_progress=on_progress,
        )

    def run_sync(
        self,
        *,
        mode: str = "since_last",
        direction: str = "both",
        dry_run: bool = False,
        confirm_deletes: bool = False,
        trigger: str | None = None,
        on_progress: ProgressCallback | None = None,
        plan_changes: int | None = None,
        outbox_slice: int = 0,
    ) -> RunReport:
        """Run a sync here and tell the signals' subscribers how it went (``signals``).

        ``outbox_slice``: send at most that many contacts of the outbox (0: all); only a
        caller that queues the rest (``jobs.run_sync_job``) sets it."""
        sender = _sender()
        send(run_started, sender, mode=mode, direction=direction, trigger=trigger, dry_run=dry_run)
        began = time.monotonic()
        try:
            engine = self.sync_engine(
                dry_run=dry_run,
                confirm_deletes=confirm_deletes,
                on_progress=on_progress,
                plan_changes=plan_changes,
                outbox_slice=outbox_slice,
            )
        except ZohoError as exc:  # Zoho's field list, before the run started
            self._announce_refused_start(sender, exc, trigger, dry_run, began)
            raise
        try:
            report = engine.sync(mode=mode, direction=direction, trigger=trigger)
        finally:
            release_running_credits(engine.client)
        report.run_id = getattr(engine.run, "id", None)
        self.record_usage(self.db.session)
        self._announce_end(sender, report, engine.run, trigger, dry_run, began)
        return report

    def sync_records(
        self, zoho_ids: list[str], *, trigger: str, notified: list[NotifiedWrite]
    ) -> RunReport:
        """Pull the records Zoho notified us of (``SyncEngine.sync_records``), announced
        like any run."""
        sender = _sender()
        send(run_started, sender, mode="ids", direction="both", trigger=trigger, dry_run=False)
        began = time.monotonic()
        try:
            engine = self.sync_engine()
        except ZohoError as exc:
            self._announce_refused_start(sender, exc, trigger, False, began)
            raise
        try:
            report = engine.sync_records(zoho_ids, trigger=trigger, notified=notified)
        finally:
            release_running_credits(engine.client)
        report.run_id = getattr(engine.run, "id", None)
        self.record_usage(self.db.session)
        self._announce_end(sender, report, engine.run, trigger, False, began)
        return report

    def _announce_refused_start(
        self, sender: Any, exc: ZohoError, trigger: str | None, dry_run: bool, began: float
    ) -> None:
        """Zoho refused what a run needs before it starts (its field list): the run ends
        here, so ``run_finished`` still follows ``run_started`` (a receiver that pairs them,
        a gauge of runs going on, would otherwise count this one forever), with a failed
        report and no run id, as no run row was written."""
        if isinstance(exc, ZohoReconnectRequired):  # a plan that finds it tells it too
            send(connection_lost, sender, reason=str(exc), error=exc)
        report = RunReport(status="failed", message=str(exc), error=exc)
        send(
            run_finished,
            sender,
            report=report,
            run_id=None,
            trigger=trigger,
            dry_run=dry_run,
            duration=time.monotonic() - began,
        )

    def _announce_end(
        self,
        sender: Any,
        report: RunReport,
        run: Any,
        trigger: str | None,
        dry_run: bool,
        began: float,
    ) -> None:
        """The trouble a real run met first (connection, breaker, budget), then its end."""
        run_id = getattr(run, "id", None)
        if not dry_run:
            if isinstance(report.error, ZohoReconnectRequired):
                send(connection_lost, sender, reason=report.message, error=report.error)
            if report.status == "needs_confirmation":
                send(
                    mass_delete_blocked,
                    sender,
                    pending_deletes=report.pending_deletes,
                    reason=report.message,
                    run_id=run_id,
                )
            low = self.credit_budget_low(paused=report.status == "paused")
            if low is not None:
                if report.status == "paused" and report.message:
                    low["reason"] = report.message  # which line stopped it, and until when
                send(
                    credit_budget_low,
                    sender,
                    **low,
                    resumes_at=getattr(report.error, "resumes_at", None),
                )
        send(
            run_finished,
            sender,
            report=report,
            run_id=run_id,
            trigger=trigger,
            dry_run=dry_run,
            duration=time.monotonic() - began,
        )

    def credit_budget_low(self, *, paused: bool = False) -> dict[str, Any] | None:
        """Whether the sync's credits run low: a run paused for them, or the last 24 hours
        spent ZOHO_SYNC_CREDIT_ALERT_SHARE of ZOHO_SYNC_DAILY_CREDIT_BUDGET. None: they
        don't; else ``spent``, ``limit``, ``paused`` and the ``reason`` in words. ``spent``
        is the org's, other tenants' runs on it included, as the budget is the org's."""
        limit = self.config.daily_credit_budget or None
        if not paused and limit is None:
            return None
        now = datetime.now(timezone.utc)
        spent, _oldest, by_others = org_credits_spent_since(self.db.session, now - CREDIT_WINDOW)
        share = self.config.operations.credit_alert_share
        if not paused and (limit is None or spent < share * limit):
            return None
        if paused:
            reason = "A sync run paused: its Zoho credits are spent for now."
        else:
            shared = f", of which {by_others} by other sites on this Zoho org" if by_others else ""
            reason = (
                f"The sync spent {spent} of its {limit} Zoho credits in the last 24 hours"
                f"{shared} (alert at {share:.0%}, ZOHO_SYNC_CREDIT_ALERT_SHARE); at the limit "
                "it pauses."
            )
        return {"spent": spent, "limit": limit, "paused": paused, "reason": reason}

    # -- API usage ------------------------------------------------------------------------

    def record_usage(self, session: Session) -> dict[str, Any]:
        """Move the meter's counts into today's usage rows and return what was moved."""
        snapshot = self.meter.snapshot()
        self.meter.reset()
        today = datetime.now(timezone.utc).date()
        for endpoint, calls in snapshot["calls"].items():
            credits = snapshot["credits"].get(endpoint, 0)
            row = session.scalars(
                sa.select(ApiUsage).where(ApiUsage.day == today, ApiUsage.endpoint == endpoint)
            ).first()
            if row is None:
                session.add(ApiUsage(day=today, endpoint=endpoint, calls=calls, credits=credits))
            else:
                row.calls += calls
                row.credits += credits
        session.commit()
        return snapshot


def _sender() -> Any:
    """The app that signals name as their sender, as Flask's own signals do (None outside
    an app context: a receiver connected for any sender still hears it)."""
    return current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]


def _pause_announcer(sender: Any, module: str | None) -> Callable[[str, str, str], None]:
    """The ``mapping_field_paused`` signal for a row the run paused (its field list, or
    Zoho refusing the field mid-run), named by the sender computed while the app is current
    (the push writes from worker threads)."""

    def announce(zoho_field: str, host_field: str, reason: str) -> None:
        field_paused(
            sender, module=module or "", zoho_field=zoho_field, host_field=host_field, reason=reason
        )

    return announce


def _failed_record_announcer(sender: Any) -> Callable[[dict[str, Any]], None]:
    """The ledger's hook for a failed record: the ``record_failed`` signal, from the row the
    history gets (the push records from worker threads, which have no app context)."""

    def announce(row: dict[str, Any]) -> None:
        send(
            record_failed,
            sender,
            run_id=row.get("run_id"),
            direction=row.get("direction"),
            contact_id=row.get("contact_id"),
            zoho_id=row.get("zoho_id"),
            reason=row.get("reason"),
            error_code=row.get("error_code"),
        )

    return announce


def state_of(app: Flask) -> ZohoSyncState:
    """``app``'s sync state, or a message saying the extension is not set up on it.

    For the faces, which know their app (``current_app`` in a request or a command, the
    app a worker loaded for a job); rooms below them are handed the state instead.
    """
    try:
        return app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
    except KeyError:
        raise ConfigurationError(
            "Flask-Zoho-Sync is not initialised on this app: call ZohoSync(app, db=db)."
        ) from None


def release_running_credits(client: Any) -> None:
    """The run on ``client`` has ended and its credits are in the database: it no longer
    counts among the org's runs going on now."""
    budget = getattr(client, "budget", None)
    running = getattr(budget, "running", None)
    if isinstance(running, RedisRunningCredits):
        running.release()
