"""``flask zoho-sync ...``: the operator's handle on the sync, without a browser."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import with_appcontext

from .errors import ZohoSyncError
from .extension import get_state
from .status import sync_status
from .zoho.errors import ZohoError


def _fail(exc: Exception) -> None:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(1)


@click.group("zoho-sync")
def zoho_sync_cli() -> None:
    """Keep this app's contacts and Zoho CRM in step."""


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
    state = get_state()
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


@zoho_sync_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@with_appcontext
def status_command(as_json: bool) -> None:
    """Connection, module, counts and the last push and pull."""
    state = get_state()
    status = sync_status(state.db.session)
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    connection = status["connection"]
    if connection:
        click.echo(
            f"Connected: {connection['org'] or '?'} as {connection['user'] or '?'} "
            f"(data centre {connection['data_centre'] or '?'}, {connection['api_domain']})"
        )
    else:
        click.echo("Not connected to Zoho CRM.")
    click.echo(f"Module: {status['module'] or 'not chosen'}; time zone: {status['time_zone']}")
    click.echo(f"Automatic sync: {'on' if status['auto_sync'] else 'off'}")
    counts = status["counts"]
    click.echo(
        f"Linked: {counts['linked']}; pending: {counts['pending']}; errors: {counts['errors']}"
    )
    click.echo(f"Last push: {status['last_push_at'] or 'never'}")
    click.echo(f"Last pull: {status['last_pull_at'] or 'never'}")
    api = status["api_today"]
    click.echo(f"Zoho API today: {api['calls']} calls, {api['credits']} credits")


@zoho_sync_cli.command("rotate-keys")
@with_appcontext
def rotate_keys_command() -> None:
    """Re-encrypt stored tokens with the newest ZOHO_SYNC_ENCRYPTION_KEYS key."""
    import sqlalchemy as sa

    from .models import Connection

    state = get_state()
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
