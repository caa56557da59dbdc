"""The extension's own tables.

They are declared once, on a private ``MetaData``, and copied onto the host's metadata in
``init_app``; the host's ``db.create_all()`` and Alembic/Flask-Migrate autogenerate therefore
see them like the host's own tables, while the classes stay importable and typed. Host
contacts are referred to by their primary key as text and never by foreign key, so the
extension imposes nothing on the host's schema and a host delete cannot cascade into the
history that explains it.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from .tenancy import TenantScoped

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores instants in UTC and always hands back aware UTC datetimes.

    SQLite forgets offsets and PostgreSQL converts to the session zone; comparing watermarks
    must not depend on either, so both see naive UTC on the way in and get UTC attached on
    the way out.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        tz = value.tzinfo
        if tz is None:
            raise ValueError("flask_zoho_sync stores only aware datetimes; attach a time zone")
        if tz is timezone.utc:  # the sync's own timestamps: no conversion to make
            return value.replace(tzinfo=None)
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            return value.astimezone(timezone.utc)
        return value.replace(tzinfo=timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Connection(TenantScoped, Base):
    """The one Zoho connection of this app: where Zoho is and the (encrypted) tokens."""

    __tablename__ = "zoho_sync_connection"

    id: Mapped[int] = mapped_column(primary_key=True)
    accounts_server: Mapped[str] = mapped_column(sa.String(255))
    api_domain: Mapped[str] = mapped_column(sa.String(255))
    location: Mapped[str | None] = mapped_column(sa.String(16))
    refresh_token_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)
    access_token_encrypted: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    expires_at: Mapped[float] = mapped_column(sa.Float, default=0.0)
    scope: Mapped[str | None] = mapped_column(sa.Text)
    zoho_user_id: Mapped[str | None] = mapped_column(sa.String(32))
    zoho_user_email: Mapped[str | None] = mapped_column(sa.String(255))
    zoho_user_name: Mapped[str | None] = mapped_column(sa.String(255))
    org_id: Mapped[str | None] = mapped_column(sa.String(32))
    org_name: Mapped[str | None] = mapped_column(sa.String(255))
    #: The org's ``domain_name`` ("org4876876"), part of its records' web addresses.
    org_domain: Mapped[str | None] = mapped_column(sa.String(64))
    org_time_zone: Mapped[str | None] = mapped_column(sa.String(64))
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, onupdate=_now)


class SyncSettings(TenantScoped, Base):
    """What the admin chose: module, time zone, automatic sync, conflict policy, watermarks."""

    __tablename__ = "zoho_sync_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    module: Mapped[str | None] = mapped_column(sa.String(16))
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    auto_sync: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    conflict_policy: Mapped[str] = mapped_column(sa.String(16), default="newest")
    pull_watermark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_watermark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_push_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_pull_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Zoho's field metadata (tens of KB): loaded when read, not with every settings row,
    #: which runs and pages read many times (each commit expires it).
    zoho_fields: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON, deferred=True)
    zoho_fields_module: Mapped[str | None] = mapped_column(sa.String(16))
    zoho_fields_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The Zoho notification channel that tells us of changes between pulls.
    notify_channel_id: Mapped[str | None] = mapped_column(sa.String(32))
    notify_token_encrypted: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    notify_module: Mapped[str | None] = mapped_column(sa.String(16))
    notify_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, onupdate=_now)
    #: two_way | export_only | import_only | update_only (``sync.modes``); None follows
    #: ZOHO_SYNC_MODE, so a host can set it in config until an admin chooses on the page.
    sync_mode: Mapped[str | None] = mapped_column(sa.String(16))


class FieldMap(TenantScoped, Base):
    """One row of the mapping editor: a host field, group or system field and its Zoho field."""

    __tablename__ = "zoho_sync_field_map"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "kind", "host_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # field | group | system
    host_key: Mapped[str] = mapped_column(sa.String(128))
    zoho_field: Mapped[str] = mapped_column(sa.String(128))
    direction: Mapped[str] = mapped_column(sa.String(16), default="both")
    policy: Mapped[str | None] = mapped_column(sa.String(16))
    inverted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # Schema drift (issue 19; flask_zoho_sync/drift.py): Zoho's stable id of the field, so a
    # rename in Zoho is followed; why the row is paused after Zoho refused the field; and
    # host value -> Zoho value replacements for a picklist.
    zoho_field_id: Mapped[str | None] = mapped_column(sa.String(32))
    paused_reason: Mapped[str | None] = mapped_column(sa.Text)
    value_map: Mapped[dict[str, str] | None] = mapped_column(sa.JSON)
    # When the row last changed Zoho field or resumed: older snapshots hold no base for it.
    remapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: always | fill_blanks | first_sync (``sync.modes``); None is "always".
    overwrite: Mapped[str | None] = mapped_column(sa.String(16))


class Link(TenantScoped, Base):
    """A host contact and the Zoho record it is synced with, and what both held last time."""

    __tablename__ = "zoho_sync_link"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "module", "zoho_id"),
        sa.UniqueConstraint("tenant_id", "module", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    module: Mapped[str] = mapped_column(sa.String(16))
    contact_id: Mapped[str] = mapped_column(sa.String(64))
    zoho_id: Mapped[str] = mapped_column(sa.String(32))
    snapshot: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    zoho_modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    last_error: Mapped[str | None] = mapped_column(sa.Text)


class OutboxEntry(TenantScoped, Base):
    """A host change waiting to reach Zoho, written in the host's own transaction."""

    __tablename__ = "zoho_sync_outbox"
    __table_args__ = (sa.Index("ix_zoho_sync_outbox_pending", "processed_at", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[str] = mapped_column(sa.String(64))
    operation: Mapped[str] = mapped_column(sa.String(16))  # upsert | delete
    zoho_id: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxBatch(TenantScoped, Base):
    """One flush's captured changes of one kind, as written on the host's commit path.

    Capture writes a single small row per flush and operation instead of a row per contact:
    per-contact rows made a 1,000-contact commit 15-30% slower, most of it inserting them.
    The worker expands batches into per-contact :class:`OutboxEntry` rows
    (``Ledger.pending_outbox``) before a push reads the outbox, because retries, errors and
    history are per contact. The information is exactly that of the per-contact rows:
    ``contact_ids`` in capture order, and for deletes ``zoho_ids`` (contact id -> the Zoho id
    it was linked to, read when the host row still existed; contacts without a link are
    absent). ``id`` orders batches, so the last operation on a contact stays last.
    """

    __tablename__ = "zoho_sync_outbox_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    operation: Mapped[str] = mapped_column(sa.String(16))  # upsert | delete
    contact_ids: Mapped[list[str]] = mapped_column(sa.JSON)
    zoho_ids: Mapped[dict[str, str] | None] = mapped_column(sa.JSON(none_as_null=True))


class Run(TenantScoped, Base):
    """One sync run: what it was asked to do, how far it got, what it cost."""

    __tablename__ = "zoho_sync_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # sync | push | pull
    mode: Mapped[str] = mapped_column(sa.String(16))  # all | since_last | outbox | ids
    dry_run: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    status: Mapped[str] = mapped_column(sa.String(24), default="running")
    trigger: Mapped[str | None] = mapped_column(sa.String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    counts: Mapped[dict[str, int]] = mapped_column(sa.JSON, default=dict)
    calls: Mapped[int] = mapped_column(sa.Integer, default=0)
    credits: Mapped[int] = mapped_column(sa.Integer, default=0)
    progress_done: Mapped[int] = mapped_column(sa.Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)


class RecordHistory(TenantScoped, Base):
    """What changed on one record, which way, and why."""

    __tablename__ = "zoho_sync_history"
    __table_args__ = (
        sa.Index("ix_zoho_sync_history_contact", "contact_id"),
        sa.Index("ix_zoho_sync_history_zoho", "zoho_id"),
        # A run's page lists its rows by outcome, a page at a time, and History asks which
        # runs changed anything: both look rows up by run, then by action.
        sa.Index("ix_zoho_sync_history_run", "run_id", "action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("zoho_sync_run.id"))
    contact_id: Mapped[str | None] = mapped_column(sa.String(64))
    zoho_id: Mapped[str | None] = mapped_column(sa.String(32))
    direction: Mapped[str] = mapped_column(sa.String(16))  # to_zoho | to_host
    action: Mapped[str] = mapped_column(sa.String(16))  # create | update | delete | link | error
    changes: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class Tombstone(TenantScoped, Base):
    """A deleted pairing, kept so that a late update cannot bring the record back."""

    __tablename__ = "zoho_sync_tombstone"
    __table_args__ = (sa.Index("ix_zoho_sync_tombstone_ids", "module", "zoho_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    module: Mapped[str] = mapped_column(sa.String(16))
    zoho_id: Mapped[str | None] = mapped_column(sa.String(32))
    contact_id: Mapped[str | None] = mapped_column(sa.String(64))
    deleted_on: Mapped[str] = mapped_column(sa.String(8))  # host | zoho
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class LeadConversion(TenantScoped, Base):
    """A linked lead a Zoho user converted, and what the sync did about it.

    The host contact stays; this row keeps the records Zoho made of the lead (its Contact,
    and the Account and Deal when there are any) and the outcome chosen then
    (``ZOHO_SYNC_ON_LEAD_CONVERSION``): ``follow`` (the link moved to the Contact, syncing
    goes on there) or ``stop`` (the link stays on the converted lead and nothing more is
    synced for the contact). A table of its own rather than link columns: hosts add it as
    they add every table of the extension (``flask db migrate``, ``create_all``), and the
    schema check names it when it is missing.
    """

    __tablename__ = "zoho_sync_lead_conversion"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "module", "lead_id"),
        sa.Index("ix_zoho_sync_lead_conversion_contact", "module", "contact_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The module the sync was in (Leads) when it saw the conversion.
    module: Mapped[str] = mapped_column(sa.String(16))
    contact_id: Mapped[str] = mapped_column(sa.String(64))
    lead_id: Mapped[str] = mapped_column(sa.String(32))
    contact_zoho_id: Mapped[str | None] = mapped_column(sa.String(32))
    account_id: Mapped[str | None] = mapped_column(sa.String(32))
    deal_id: Mapped[str | None] = mapped_column(sa.String(32))
    #: Zoho's Converted_Date_Time.
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(sa.String(8))  # follow | stop
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


class ApiUsage(TenantScoped, Base):
    """Zoho calls and credits per UTC day and endpoint, for the overview and the budget."""

    __tablename__ = "zoho_sync_api_usage"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "day", "endpoint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date)
    endpoint: Mapped[str] = mapped_column(sa.String(96))
    calls: Mapped[int] = mapped_column(sa.Integer, default=0)
    credits: Mapped[int] = mapped_column(sa.Integer, default=0)


class AlertRecipients(TenantScoped, Base):
    """Who hears of an incident: the settings page's and ``settings --alert-...``'s choice.

    One row; a column left NULL falls back to ZOHO_SYNC_ALERT_EMAILS / _WEBHOOK_URL, so an
    app configured by its environment alerts before anyone opens the settings page.
    """

    __tablename__ = "zoho_sync_alert_recipients"

    id: Mapped[int] = mapped_column(primary_key=True)
    emails: Mapped[str | None] = mapped_column(sa.Text)  # comma-separated; "" means none
    webhook_url: Mapped[str | None] = mapped_column(sa.Text)  # "" means none
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, onupdate=_now)


class Incident(TenantScoped, Base):
    """Trouble an admin must hear of once (and once more when it clears), not per record.

    ``kind`` is run_failed, connection_lost, breaker_tripped, budget_low or field_paused;
    ``subject`` tells apart incidents of one kind that can be open together (the paused
    field). The ``*_alert_at`` columns are claimed before an alert is sent, so two workers
    never send the same alert.
    """

    __tablename__ = "zoho_sync_incident"
    __table_args__ = (sa.Index("ix_zoho_sync_incident_open", "kind", "subject", "cleared_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    subject: Mapped[str] = mapped_column(sa.String(255), default="")
    summary: Mapped[str] = mapped_column(sa.Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleared_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Why the last alert could not be delivered (shown on the settings page).
    delivery_error: Mapped[str | None] = mapped_column(sa.Text)


class SyncScope(TenantScoped, Base):
    """What syncs (issue 21; ``flask_zoho_sync.scope``): the host groups or named filter,
    the Zoho conditions, what leaving the scope does, and the first sync's match key. One
    row; absent, the ``ZOHO_SYNC_SCOPE_*`` and ``ZOHO_SYNC_MATCH_KEY`` config applies."""

    __tablename__ = "zoho_sync_scope"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_groups: Mapped[list[str] | None] = mapped_column(sa.JSON)
    host_filter: Mapped[str | None] = mapped_column(sa.String(128))
    zoho_conditions: Mapped[str | None] = mapped_column(sa.Text)
    on_leave: Mapped[str] = mapped_column(sa.String(16), default="unlink")
    match_key: Mapped[str] = mapped_column(sa.String(160), default="email")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, onupdate=_now)


class ScopeExit(TenantScoped, Base):
    """A pair the sync let go because one side left the scope (``side``: host | zoho), so
    the other side's copy is never linked or created again while it stays out; cleared when
    the record comes back into scope."""

    __tablename__ = "zoho_sync_scope_exit"
    __table_args__ = (
        sa.Index("ix_zoho_sync_scope_exit_contact", "module", "contact_id"),
        sa.Index("ix_zoho_sync_scope_exit_zoho", "module", "zoho_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    module: Mapped[str] = mapped_column(sa.String(16))
    contact_id: Mapped[str | None] = mapped_column(sa.String(64))
    zoho_id: Mapped[str | None] = mapped_column(sa.String(32))
    side: Mapped[str] = mapped_column(sa.String(8))  # host | zoho
    action: Mapped[str] = mapped_column(sa.String(8))  # unlink | delete
    left_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)


def attach_tables(host_metadata: sa.MetaData) -> None:
    """Put copies of the extension's tables on the host's metadata (idempotent)."""
    for table in Base.metadata.sorted_tables:
        if table.name not in host_metadata.tables:
            table.to_metadata(host_metadata)
