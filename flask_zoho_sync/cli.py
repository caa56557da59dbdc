"""``flask zoho-sync ...``: the operator's handle on the sync, without a browser.

A face, like the admin pages: each command reads the sync state of the app it runs for
(:func:`_state`) and hands it down.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from typing import Any

import click
import redis
import sqlalchemy as sa
from flask import current_app
from flask.cli import ScriptInfo, with_appcontext

from .alerts import deliver_quietly
from .config import validate_time_zone
from .connection import describe_connection, refresh_token_warning
from .drift import ValueMapRefused, check_value_map
from .errors import ConfigurationError, ZohoSyncError
from .health import all_tenants_health, health_report
from .incidents import alert_recipients, set_alert_recipients
from .jobs import (
    SyncBusy,
    exclusive_run,
    known_tenants,
    queue_for,
    settings_lock,
    tick_answer,
    tick_tenants,
)
from .models import Connection, FieldMap, Link, SyncSettings
from .preferences import (
    MODULES,
    MappingRefused,
    UnknownMappingRow,
    add_default_mappings,
    field_maps,
    get_settings,
    has_fresh_zoho_fields,
    refresh_zoho_fields,
    set_field_map,
    set_overwrite,
    set_sync_mode,
    set_winner,
    switch_module,
    sync_mode_of,
    validate_field_map,
)
from .schema import require_tables
from .scope import read_scope, save_scope
from .signals import field_resumed
from .state import ZohoSyncState, state_of
from .status import sync_readiness, sync_status
from .sync.coercion import ZohoField
from .sync.context import RunReport
from .sync.modes import OVERWRITE_POLICIES, SYNC_MODES, WINNER_OF_POLICY, WINNERS
from .sync.scope import ON_LEAVE, ScopeRefused, zoho_scope_text
from .tenancy import TenantKeyError, enter_tenant, leave_tenant
from .undo import outcome_as_dict, revert_lines, revert_run
from .zoho.errors import ZohoError

#: Where the group keeps the --tenant it was given, for commands that act on all without it.
_TENANT_META = "zoho_sync.tenant"


def _state() -> ZohoSyncState:
    """The sync state of the app this command runs for."""
    return state_of(current_app)


def _fail(exc: Exception) -> None:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(1)


class _NeedsTables(click.Command):
    """A command that reads the sync's tables: on a database without them it says in one
    line which are missing and what to run (exit 2), before any query can raise. Checked
    here, after parsing, so ``--help`` still works on a fresh database."""

    def invoke(self, ctx: click.Context) -> object:
        if not current_app:
            ctx.with_resource(ctx.ensure_object(ScriptInfo).load_app().app_context())
        try:
            state = _state()
            require_tables(state.db.engine, state.adapter)
        except ZohoSyncError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        return super().invoke(ctx)


@click.group("zoho-sync")
@click.option(
    "--tenant",
    envvar="ZOHO_SYNC_TENANT",
    default=None,
    help="Whose sync (multi-tenant hosts: the site, account or organisation key). "
    "Default: the single tenant 'default'; 'tick' without it ticks every tenant.",
)
@click.pass_context
def zoho_sync_cli(ctx: click.Context, tenant: str | None) -> None:
    """Keep this app's contacts and Zoho CRM in step."""
    if tenant is None:
        return
    try:
        token = enter_tenant(tenant)
    except TenantKeyError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenant") from None
    ctx.meta[_TENANT_META] = tenant
    ctx.call_on_close(lambda: leave_tenant(token))


zoho_sync_cli.command_class = _NeedsTables


@zoho_sync_cli.command("connect")
@click.option("--refresh-token", required=True, help="A Zoho refresh token for the API client.")
@click.option(
    "--accounts-server",
    default=None,
    help="The Zoho accounts server that issued it (default: ZOHO_SYNC_ACCOUNTS_URL).",
)
@with_appcontext
def connect_command(refresh_token: str, accounts_server: str | None) -> None:
    """Connect without a browser, from a refresh token (ops, tests)."""
    state = _state()
    try:
        row = state.connect_with_refresh_token(
            refresh_token, accounts_server or state.config.accounts_url
        )
    except (ZohoError, ZohoSyncError) as exc:
        _fail(exc)
    click.echo(
        f"Connected to {row.org_name or 'Zoho CRM'} as {row.zoho_user_email or 'unknown user'} "
        f"({row.api_domain}); org time zone {row.org_time_zone or 'unknown'}."
    )
    warning = refresh_token_warning(state.db.session, row)
    if warning:
        click.echo(f"Warning: {warning}", err=True)


@zoho_sync_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when unhealthy, saying why, one line per problem (for cron and monitors).",
)
@click.option(
    "--all-tenants",
    is_flag=True,
    help="The health of every tenant with settings or a connection, in one verdict "
    "(multi-tenant hosts; not with --tenant).",
)
@with_appcontext
def status_command(as_json: bool, check: bool, all_tenants: bool) -> None:
    """Connection, module, counts, the last push and pull, and health."""
    state = _state()
    if all_tenants:
        _all_tenants_status(state, as_json=as_json, check=check)
        return
    status = sync_status(state.db.session)
    health = health_report(state)
    if as_json:
        click.echo(json.dumps({**status, "health": health}, indent=2))
    elif check:
        for problem in health["problems"]:
            click.echo(f"UNHEALTHY: {problem}")
        if health["healthy"]:
            click.echo("healthy")
    if check and not health["healthy"]:
        sys.exit(1)
    if as_json or check:
        return
    connection = status["connection"]
    if connection:
        click.echo(
            f"Connected: {connection['org'] or '?'} as {connection['user'] or '?'} "
            f"(data centre {connection['data_centre'] or 'custom'}, {connection['api_domain']})"
        )
    else:
        click.echo("Not connected to Zoho CRM.")
    zone = status["time_zone"] or "not set (UTC is used)"  # no settings saved yet
    click.echo(f"Module: {status['module'] or 'not chosen'}; time zone: {zone}")
    if status["time_zone_differs"]:
        click.echo(_zone_warning(status["time_zone"], connection["org_time_zone"]))
    click.echo(f"Automatic sync: {'on' if status['auto_sync'] else 'off'}")
    counts = status["counts"]
    click.echo(
        f"Linked: {counts['linked']}; pending: {counts['pending']}; errors: {counts['errors']}"
    )
    click.echo(f"Last push: {status['last_push_at'] or 'never'}")
    click.echo(f"Last pull: {status['last_pull_at'] or 'never'}")
    api = status["api_today"]
    click.echo(f"Zoho API today: {api['calls']} calls, {api['credits']} credits")
    for problem in health["problems"]:
        click.echo(f"Problem: {problem}")


def _all_tenants_status(state: ZohoSyncState, *, as_json: bool, check: bool) -> None:
    """``status --all-tenants``: one line per problem, each naming its tenant, then the
    verdict; with ``--json`` the report ``GET {prefix}/health?tenant=*`` answers."""
    if click.get_current_context().meta.get(_TENANT_META):
        raise click.UsageError("--all-tenants reads every tenant: leave out --tenant.")
    health = all_tenants_health(state, known_tenants(state))
    if as_json:
        click.echo(json.dumps(health, indent=2))
    else:
        for problem in health["problems"]:
            click.echo(f"UNHEALTHY: {problem}")
        checked = len(health["tenants"])
        unwell = sum(1 for report in health["tenants"].values() if not report["healthy"])
        if health["healthy"]:
            click.echo(f"healthy: {checked} tenants")
        else:
            click.echo(f"unhealthy: {unwell} of {checked} tenants")
    if check and not health["healthy"]:
        sys.exit(1)


def _zone_warning(zone: str, org_zone: str) -> str:
    """The settings page's warning, in the CLI's words: the two zones differ, so naive host
    date-times are read in ours, not the org's."""
    return (
        f"Warning: your Zoho organisation uses {org_zone}, but the sync uses {zone}; "
        f"date-times this site stores without a zone are read as {zone} time. "
        f"To match Zoho: flask zoho-sync settings --timezone {org_zone}"
    )


@zoho_sync_cli.command("rotate-keys")
@with_appcontext
def rotate_keys_command() -> None:
    """Re-encrypt stored tokens with the newest ZOHO_SYNC_ENCRYPTION_KEYS key."""
    state = _state()
    session = state.db.session
    rows = session.scalars(sa.select(Connection)).all()
    try:
        for row in rows:
            row.refresh_token_encrypted = state.vault.rotate(row.refresh_token_encrypted)
            if row.access_token_encrypted:
                row.access_token_encrypted = state.vault.rotate(row.access_token_encrypted)
    except ZohoSyncError as exc:
        session.rollback()
        _fail(exc)
    session.commit()
    click.echo(
        f"Re-encrypted {len(rows)} connection(s) with the newest key; older keys may now be "
        "removed from ZOHO_SYNC_ENCRYPTION_KEYS."
    )


def _parse_map(spec: str) -> dict[str, object]:
    """``HOST=ZOHO``, ``group:NAME=ZOHO`` or ``system:KIND=ZOHO`` (``!ZOHO`` inverts)."""
    if "=" not in spec:
        raise click.BadParameter(f"{spec!r}: write it as HOST_FIELD=ZOHO_FIELD", param_hint="--map")
    host_key, zoho_field = (part.strip() for part in spec.split("=", 1))
    kind = "field"
    if ":" in host_key:
        kind, host_key = (part.strip() for part in host_key.split(":", 1))
        if kind not in ("group", "system"):
            raise click.BadParameter(
                f"{spec!r}: the prefix must be group: or system:", param_hint="--map"
            )
    inverted = zoho_field.startswith("!")
    zoho_field = zoho_field.lstrip("!")
    if not host_key or not zoho_field:
        raise click.BadParameter(f"{spec!r}: both sides must be named", param_hint="--map")
    return {"kind": kind, "host_key": host_key, "zoho_field": zoho_field, "inverted": inverted}


def _set_value_map(session: Any, settings: SyncSettings, spec: str) -> None:
    """``HOST_FIELD:HOST_VALUE=ZOHO_VALUE``: one pair of a row's value map (an empty
    ZOHO_VALUE removes the pair), checked against Zoho's picklist like the editor does."""
    host_key, colon, pair = spec.partition(":")
    host_value, equals, zoho_value = pair.partition("=")
    if not colon or not equals or not host_key.strip() or not host_value.strip():
        raise click.BadParameter(
            f"{spec!r}: write it as HOST_FIELD:HOST_VALUE=ZOHO_VALUE", param_hint="--value-map"
        )
    row = session.scalars(
        sa.select(FieldMap).where(FieldMap.kind == "field", FieldMap.host_key == host_key.strip())
    ).first()
    if row is None:
        raise click.BadParameter(
            f"{spec!r}: {host_key.strip()} is not mapped; map it first with --map",
            param_hint="--value-map",
        )
    pairs = dict(row.value_map or {})
    pairs.pop(host_value.strip(), None)
    if zoho_value.strip():
        pairs[host_value.strip()] = zoho_value.strip()
    metadata = next(
        (meta for meta in settings.zoho_fields or () if meta.get("api_name") == row.zoho_field),
        None,
    )
    zoho = ZohoField.from_metadata(metadata) if metadata else None
    try:
        row.value_map = check_value_map(pairs, zoho)
    except ValueMapRefused as refusal:
        raise ZohoSyncError(f"--value-map {spec}: {refusal} Nothing was changed.") from None


def _load_zoho_fields_for(state: ZohoSyncState, settings: SyncSettings, names: list[str]) -> None:
    """Zoho's field list for the chosen module, fetched (one call) when none is cached or
    it lacks a named field, so each ``--map`` is checked against what Zoho has."""
    session = state.db.session
    if settings.module not in MODULES:
        raise click.UsageError("Choose a module first: --module Leads or Contacts.")
    fresh = has_fresh_zoho_fields(settings)
    known = {field.get("api_name") for field in settings.zoho_fields or ()} if fresh else set()
    if set(names) <= known:
        return
    if describe_connection(session) is None:
        if fresh:
            return  # the check names the unknown field
        raise ZohoSyncError(
            f"Zoho's {settings.module} fields are not loaded, so the mapping cannot be checked: "
            "connect first (flask zoho-sync connect), then map. Nothing was changed."
        )
    refresh_zoho_fields(session, state.client(), settings)


def _set_field_policy(session: Any, spec: str, option: str) -> None:
    """``FIELD=VALUE`` for ``--overwrite`` (an overwrite policy) or ``--winner`` (who wins a
    conflict on that field); FIELD is a mapped host field or ``group:NAME``."""
    name, equals, value = spec.partition("=")
    choices = OVERWRITE_POLICIES if option == "--overwrite" else tuple(WINNERS)
    if not equals or not name.strip() or value.strip() not in choices:
        raise click.BadParameter(
            f"{spec!r}: write it as FIELD=VALUE, VALUE one of {', '.join(choices)}",
            param_hint=option,
        )
    setter = set_overwrite if option == "--overwrite" else set_winner
    try:
        setter(session, name.strip(), value.strip())
    except UnknownMappingRow as refusal:
        raise click.BadParameter(f"{spec!r}: {refusal}", param_hint=option) from None


def _change_settings(
    state: ZohoSyncState,
    settings: SyncSettings,
    *,
    module: str | None,
    time_zone: str | None,
    auto_sync: str | None,
    conflict_policy: str | None,
    maps: tuple[str, ...],
    defaults: bool,
    relink: bool,
    value_maps: tuple[str, ...] = (),
    sync_mode: str | None = None,
    overwrites: tuple[str, ...] = (),
    winners: tuple[str, ...] = (),
) -> None:
    """Apply the options to the session (the caller commits all of them, or none)."""
    session = state.db.session
    if time_zone is not None:
        validate_time_zone(time_zone)
        settings.time_zone = time_zone
    if module is not None and module != settings.module:
        linked_elsewhere = session.scalar(
            sa.select(sa.func.count()).select_from(Link).where(Link.module != module)
        )
        if linked_elsewhere and not relink:
            raise click.UsageError(
                f"{linked_elsewhere} contacts are linked to {settings.module} records. "
                "Switching forgets those links (contacts are matched again by email on the "
                "next sync). Repeat with --relink to confirm."
            )
        switch_module(session, settings, module)
    if auto_sync is not None:
        settings.auto_sync = auto_sync == "on"
    if conflict_policy is not None:
        settings.conflict_policy = conflict_policy
    parsed = [(spec, _parse_map(spec)) for spec in maps]
    if parsed:
        _load_zoho_fields_for(state, settings, [row["zoho_field"] for _, row in parsed])
    for spec, row in parsed:
        # The mapping editor's judge: the same rows refused with the same words.
        try:
            validate_field_map(session, state.adapter, **row)
        except MappingRefused as refusal:
            raise ZohoSyncError(f"--map {spec}: {refusal} Nothing was changed.") from None
        paused_before = session.scalars(
            sa.select(FieldMap).where(
                FieldMap.kind == row["kind"],
                FieldMap.host_key == row["host_key"],
                FieldMap.paused_reason.is_not(None),
            )
        ).first()
        saved = set_field_map(session, **row)  # type: ignore[arg-type]
        if paused_before is not None and saved.paused_reason is None:
            field_resumed(
                current_app._get_current_object(),  # type: ignore[attr-defined]
                module=settings.module or "",
                zoho_field=saved.zoho_field,
                host_field=saved.host_key,
            )
    for spec in value_maps:
        _set_value_map(session, settings, spec)
    if defaults:
        if settings.module is None:
            raise click.UsageError("Choose a module first: --module Leads or Contacts.")
        if describe_connection(session) and not has_fresh_zoho_fields(settings):
            # Matching custom fields by name needs Zoho's field list (one call).
            refresh_zoho_fields(session, state.client(), settings)
        added = add_default_mappings(session, state.adapter, settings.module)
        click.echo(f"Added {added} mappings (standard fields and matches by name).")
    if sync_mode is not None:
        set_sync_mode(session, settings, sync_mode, state.config.sync_mode)
    for spec in overwrites:
        _set_field_policy(session, spec, "--overwrite")
    for spec in winners:
        _set_field_policy(session, spec, "--winner")


@zoho_sync_cli.command("settings")
@click.option("--module", type=click.Choice(MODULES), help="Sync with Leads or Contacts.")
@click.option("--timezone", "time_zone", help="IANA zone for naive host dates and times.")
@click.option("--auto-sync", type=click.Choice(["on", "off"]), help="Automatic sync.")
@click.option(
    "--conflict-policy",
    type=click.Choice(["newest", "host_wins", "zoho_wins"]),
    help="Who wins when both sides changed a field.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    help="HOST_FIELD=ZOHO_FIELD, group:NAME=ZOHO_BOOLEAN or system:KIND=ZOHO_FIELD "
    "(KIND: contact_id, contact_url, subscription; !ZOHO_FIELD inverts). Repeatable.",
)
@click.option(
    "--value-map",
    "value_maps",
    multiple=True,
    help="HOST_FIELD:HOST_VALUE=ZOHO_VALUE: send HOST_VALUE as ZOHO_VALUE (a picklist's "
    "wording) and read it back; an empty ZOHO_VALUE removes the pair. Repeatable.",
)
@click.option(
    "--mode",
    "sync_mode",
    type=click.Choice(SYNC_MODES),
    help="two_way, export_only (this app to Zoho), import_only (Zoho to this app; nothing "
    "written to Zoho) or update_only (no record created on either side).",
)
@click.option(
    "--overwrite",
    "overwrites",
    multiple=True,
    metavar="FIELD=POLICY",
    help="When a mapped field (or group:NAME) may be overwritten: always, fill_blanks (only "
    "an empty target) or first_sync (only when the record is first linked). Repeatable.",
)
@click.option(
    "--winner",
    "winners",
    multiple=True,
    metavar="FIELD=SIDE",
    help="Who wins a conflict on a mapped field (or group:NAME): host, zoho, newest, or "
    "default (the --conflict-policy). Repeatable.",
)
@click.option("--defaults", is_flag=True, help="Add the standard field pairs of the module.")
@click.option("--relink", is_flag=True, help="Confirm a module switch that forgets links.")
@click.option("--alert-emails", help="Comma-separated addresses told of incidents ('' for nobody).")
@click.option("--alert-webhook", help="URL told of incidents, Slack-compatible ('' for none).")
@with_appcontext
def settings_command(
    module: str | None,
    time_zone: str | None,
    auto_sync: str | None,
    conflict_policy: str | None,
    maps: tuple[str, ...],
    value_maps: tuple[str, ...],
    sync_mode: str | None,
    overwrites: tuple[str, ...],
    winners: tuple[str, ...],
    defaults: bool,
    relink: bool,
    alert_emails: str | None,
    alert_webhook: str | None,
) -> None:
    """Show or change the module, time zone, automatic sync and field mappings."""
    state = _state()
    session = state.db.session
    switching = module is not None and module != get_settings(session).module
    if switching:
        session.rollback()  # hold no database lock while waiting for a running sync
    try:
        with settings_lock(state) if switching else nullcontext():
            settings = get_settings(session)
            _change_settings(
                state,
                settings,
                module=module,
                time_zone=time_zone,
                auto_sync=auto_sync,
                conflict_policy=conflict_policy,
                maps=maps,
                defaults=defaults,
                relink=relink,
                value_maps=value_maps,
                sync_mode=sync_mode,
                overwrites=overwrites,
                winners=winners,
            )
            if alert_emails is not None or alert_webhook is not None:
                set_alert_recipients(session, emails=alert_emails, webhook_url=alert_webhook)
            session.commit()
        state.preferences_changed()
    except (click.UsageError, click.BadParameter):
        session.rollback()
        raise
    except SyncBusy as exc:
        session.rollback()
        _fail(ZohoSyncError(f"{exc}. Nothing was changed."))
    except (ZohoSyncError, ZohoError) as exc:
        session.rollback()
        _fail(exc)
    click.echo(
        f"Module: {settings.module or 'not chosen'}; time zone: {settings.time_zone}; "
        f"automatic sync: {'on' if settings.auto_sync else 'off'}; "
        f"conflicts: {settings.conflict_policy}"
    )
    mode = sync_mode_of(settings, state.config.sync_mode)
    stored = "" if settings.sync_mode else " (ZOHO_SYNC_MODE)"
    click.echo(f"Sync mode: {mode}{stored}")
    account = describe_connection(session)
    if account and account.org_time_zone and account.org_time_zone != settings.time_zone:
        click.echo(_zone_warning(settings.time_zone, account.org_time_zone))
    recipients = alert_recipients(session, state.config.operations)
    click.echo(
        f"Alerts: email {', '.join(recipients.emails) or 'nobody'}; "
        f"webhook {recipients.webhook_url or 'none'}"
    )
    for row in field_maps(session):
        arrow = {"both": "<->", "to_zoho": "->", "to_host": "<-"}.get(row.direction, "<->")
        label = row.host_key if row.kind == "field" else f"{row.kind}:{row.host_key}"
        inverted = " (inverted)" if row.inverted else ""
        values = "; ".join(f"{h}={z}" for h, z in (row.value_map or {}).items())
        extra = f" [values: {values}]" if values else ""
        paused = f" ({row.paused_reason})" if row.paused_reason else ""
        policies = ", ".join(
            part
            for part in (
                f"overwrite: {row.overwrite}" if row.overwrite else "",
                f"winner: {WINNER_OF_POLICY.get(row.policy, row.policy)}" if row.policy else "",
            )
            if part
        )
        policies = f" [{policies}]" if policies else ""
        click.echo(f"  {label} {arrow} {row.zoho_field}{inverted}{extra}{policies}{paused}")


@zoho_sync_cli.command("sync")
@click.option("--all", "everything", is_flag=True, help="All records, not only recent changes.")
@click.option("--since-last", is_flag=True, help="Records modified since the last sync (default).")
@click.option(
    "--direction", type=click.Choice(["both", "push", "pull"]), default="both", show_default=True
)
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing anywhere.")
@click.option("--confirm-deletes", is_flag=True, help="Allow a run that deletes many records.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--revert",
    "revert_id",
    type=int,
    metavar="RUN",
    help="Take run RUN back (History shows run ids); with --dry-run, preview it.",
)
@with_appcontext
def sync_command(
    everything: bool,
    since_last: bool,
    direction: str,
    dry_run: bool,
    confirm_deletes: bool,
    as_json: bool,
    revert_id: int | None,
) -> None:
    """Synchronise now, in this process, and print what happened (or would happen)."""
    if everything and since_last:
        raise click.UsageError("Choose one of --all and --since-last.")
    state = _state()
    if revert_id is not None:
        if everything or since_last or direction != "both" or confirm_deletes:
            raise click.UsageError(
                "--revert takes only --dry-run and --json: it reverts what run RUN did."
            )
        _revert(state, revert_id, dry_run=dry_run, as_json=as_json)
        return
    refusal = sync_readiness(state.db.session, state.adapter).refusal(face="cli")
    if refusal:  # before anything is read: a plan of a blank mapping "agrees" with anything
        _fail(ZohoSyncError(refusal))
    guard = nullcontext() if dry_run else exclusive_run(state)
    try:
        with guard:
            report = state.run_sync(
                mode="all" if everything else "since_last",
                direction=direction,
                dry_run=dry_run,
                confirm_deletes=confirm_deletes,
                trigger="cli",
            )
    except SyncBusy as exc:
        _fail(ZohoSyncError(f"{exc}. Wait for it to finish, then run this command again."))
    except (ZohoError, ZohoSyncError, ValueError) as exc:
        deliver_quietly(state)  # the connection may be lost: that is an incident
        _fail(exc)
    deliver_quietly(state)
    if as_json:
        click.echo(json.dumps(report_as_dict(report), indent=2, default=str))
    else:
        click.echo(describe_report(report, dry_run=dry_run))
    if report.status in ("failed", "needs_confirmation", "stopped"):
        sys.exit(1)


def _revert(state: ZohoSyncState, run_id: int, *, dry_run: bool, as_json: bool) -> None:
    """``sync --revert RUN``: preview or carry out the revert, and print it."""
    guard = nullcontext() if dry_run else exclusive_run(state)
    try:
        with guard:
            outcome = revert_run(state, run_id, dry_run=dry_run)
    except SyncBusy as exc:
        _fail(ZohoSyncError(f"{exc}. Wait for it to finish, then run this command again."))
    except (ZohoError, ZohoSyncError, ValueError) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(outcome_as_dict(outcome), indent=2, default=str))
    else:
        click.echo("\n".join(revert_lines(outcome)))
    if outcome.status != "succeeded":
        sys.exit(1)


def report_as_dict(report: RunReport) -> dict[str, object]:
    return {
        "status": report.status,
        "run_id": report.run_id,
        "message": report.message,
        "counts": dict(report.counts),
        "estimate": None
        if report.estimate is None
        else {"calls": report.estimate[0], "credits": report.estimate[1]},
        "changes": [vars(change) for change in report.changes],
        "changes_not_listed": report.changes_not_kept,
    }


def describe_report(report: RunReport, *, dry_run: bool) -> str:
    verb = "would" if dry_run else "did"
    lines = [f"{'Plan' if dry_run else 'Sync'}: {report.status}"]
    if report.run_id is not None and not dry_run:
        # The id History shows: what 'sync --revert RUN' takes back, without the pages.
        run = report.run_id
        lines.append(f"Run {run} in History; take it back with 'zoho-sync sync --revert {run}'")
    if report.message:
        lines.append(report.message)
    for direction, label in (("to_zoho", "Zoho"), ("to_host", "this app")):
        parts = [
            f"{report.counts[f'{direction}.{action}']} {word}"
            for action, word in (
                ("create", "created"),
                ("update", "updated"),
                ("link", "linked"),
                ("delete", "deleted"),
                ("error", "failed"),
                ("left_alone", "left alone"),
            )
            if report.counts.get(f"{direction}.{action}")
        ]
        lines.append(f"In {label} it {verb}: {', '.join(parts) if parts else 'nothing'}")
    lines.append(
        f"Zoho API: {report.counts.get('calls', 0)} calls, "
        f"{report.counts.get('credits', 0)} credits"
    )
    if report.estimate is not None:
        lines.append(
            f"A real run would cost about {report.estimate[0]} calls "
            f"({report.estimate[1]} credits)."
        )
    for change in report.changes:
        if change.action == "error":
            lines.append(
                f"  ! contact {change.contact_id or '-'} / Zoho {change.zoho_id or '-'}: "
                f"{change.reason}"
            )
        elif change.action == "left_alone" and dry_run:
            lines.append(
                f"  {change.direction} left alone contact {change.contact_id or '-'} / Zoho "
                f"{change.zoho_id or '-'} {change.changes or ''}: {change.reason}"
            )
        elif dry_run:
            lines.append(
                f"  {change.direction} {change.action} contact {change.contact_id or '(new)'} "
                f"/ Zoho {change.zoho_id or '(new)'} {change.changes or ''}"
            )
    if report.changes_not_kept:
        lines.append(
            f"  ... and {report.changes_not_kept} more changes, not listed here: see the "
            "History page."
        )
    return "\n".join(lines)


@zoho_sync_cli.command("tick")
@with_appcontext
def tick_command() -> None:
    """Schedule a due pull and re-drive a stuck outbox; prints what it did as JSON."""
    state = _state()
    named = click.get_current_context().meta.get(_TENANT_META)
    try:
        reports = tick_tenants(state, [named] if named else None)
    except (redis.RedisError, OSError) as exc:
        _fail(
            ConfigurationError(
                f"Redis did not answer at {state.config.redis_url} ({exc}); start it or set "
                "ZOHO_SYNC_REDIS_URL. Nothing was lost: pending changes stay in the outbox."
            )
        )
    click.echo(json.dumps(tick_answer(reports), indent=2))


@zoho_sync_cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--simple", is_flag=True, help="Run jobs in this process (no fork).")
@with_appcontext
def worker_command(burst: bool, simple: bool) -> None:
    """Run an RQ worker (with its scheduler) for the sync queue of this app."""
    from .workers import SimpleSyncWorker, SyncWorker

    state = _state()
    worker_class = SimpleSyncWorker if simple else SyncWorker
    worker = worker_class([queue_for(state)], connection=state.redis())
    worker.work(burst=burst, with_scheduler=True)


#: ``sandbox.server.PORT_RANGE`` and ``SEED_RANGE``, spelled out: importing the sandbox
#: here would load all of it into every host app that registers the CLI.
PORT_RANGE = (0, 65535)
SEED_RANGE = (0, 10000)


class OrgTimeZone(click.ParamType):
    """An IANA zone name from the zone database, refused with a sentence otherwise."""

    name = "IANA_ZONE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from .sandbox.server import check_org_timezone

        try:
            return check_org_timezone(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@zoho_sync_cli.command("sandbox", cls=click.Command)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(*PORT_RANGE),
    help="0 picks a free port (printed at start).",
)
@click.option(
    "--org-timezone",
    default=None,
    type=OrgTimeZone(),
    help="The sandbox org's time zone (IANA name).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(*SEED_RANGE),
    help="Seed Leads to create.",
)
@click.option("--state-file", default=None, help="Keep the sandbox's data in this JSON file.")
def sandbox_command(
    host: str, port: int, org_timezone: str | None, seed: int, state_file: str | None
) -> None:
    """Run the local Zoho CRM sandbox in the foreground (Ctrl-C stops it).

    It uses this app's ZOHO_SYNC_CLIENT_ID and ZOHO_SYNC_CLIENT_SECRET when they are set,
    so the app can connect to it without further configuration.
    """
    from flask import current_app

    from .sandbox.server import PortUnavailable, run_sandbox
    from .sandbox.state import DEFAULT_TIMEZONE

    config = current_app.config
    try:
        run_sandbox(
            host,
            port,
            org_timezone or DEFAULT_TIMEZONE,
            seed,
            state_file,
            client_id=config.get("ZOHO_SYNC_CLIENT_ID"),
            client_secret=config.get("ZOHO_SYNC_CLIENT_SECRET"),
            echo=lambda line: click.echo(line),
        )
    except PortUnavailable as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


# -- what syncs (issue 21): options added to ``settings`` here, so that command's own
# -- options stay as they were; the rules are in ``scope`` and ``sync.scope`` ------------


def _describe_scope(scope: Any) -> str:
    host = (
        f"host contacts in {', '.join(scope.host_groups)}"
        if scope.host_groups
        else "every host contact"
    )
    if scope.host_filter:
        host += f" passing the filter {scope.host_filter}"
    conditions = zoho_scope_text(scope.zoho)
    zoho = f"Zoho records where {conditions}" if conditions else "every Zoho record"
    return (
        f"What syncs: {host}; {zoho}; "
        f"leaving the scope: {scope.on_leave}; first sync matches on {scope.match_key}"
    )


def _add_scope_options(command: click.Command) -> None:
    """``settings --scope-groups/--scope-filter/--zoho-scope/--on-leave/--match-key``:
    saved with ``scope.save_scope`` (the page's own rules) before the other settings."""
    command.params.extend(
        [
            click.Option(
                ["--scope-groups"],
                help="Comma-separated host groups whose contacts sync ('' for every contact).",
            ),
            click.Option(
                ["--scope-filter"],
                help="A filter the app named (adapter.add_scope_filter); '' for none.",
            ),
            click.Option(
                ["--zoho-scope"],
                help="Zoho conditions, ';'-separated: 'Lead_Status != Junk Lead; Owner = 42' "
                "('' for every record).",
            ),
            click.Option(
                ["--on-leave"],
                type=click.Choice(ON_LEAVE),
                help="A linked record leaving the scope: unlink (keep both) or delete the "
                "other side's copy.",
            ),
            click.Option(
                ["--match-key"],
                help="First-sync match: email, contact_id or field:HOST_FIELD.",
            ),
        ]
    )
    inner = command.callback
    assert inner is not None

    def callback(
        scope_groups: str | None,
        scope_filter: str | None,
        zoho_scope: str | None,
        on_leave: str | None,
        match_key: str | None,
        **rest: Any,
    ) -> None:
        state = _state()
        session = state.db.session
        chosen = (scope_groups, scope_filter, zoho_scope, on_leave, match_key)
        if any(value is not None for value in chosen):
            try:
                changed = save_scope(
                    session,
                    get_settings(session),
                    state.adapter,
                    current_app.config,
                    host_groups=scope_groups,
                    host_filter=scope_filter,
                    zoho_conditions=zoho_scope,
                    on_leave=on_leave,
                    match_key=match_key,
                )
                session.commit()
            except ScopeRefused as exc:
                session.rollback()
                _fail(exc)
                return
            if changed:
                click.echo("What syncs changed: the next sync reads everything again.")
        inner(**rest)
        click.echo(_describe_scope(read_scope(session, current_app.config)))

    command.callback = callback


_add_scope_options(settings_command)
