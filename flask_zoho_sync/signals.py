"""Blinker signals a host app (and the extension's own alerts) can subscribe to.

As Flask's own signals, each is sent with the Flask app as sender and the details as
keyword arguments, so a host subscribes for one app or for all::

    from flask_zoho_sync import signals

    @signals.run_finished.connect_via(app)
    def log_run(app, report, run_id, trigger, dry_run, duration, **extra):
        ...

They live here, in the host glue, rather than in ``sync/``: the engine has no app to send
as sender and reports through its ``RunReport`` and the ledger; ``state.py`` sends the run
signals from what those hold, and the ledger's record of a failed record. blinker itself is
Flask's own dependency, so this adds no package.

Receivers run in the sending thread (the RQ worker, the CLI, or the web request of an
admin's "run now"), synchronously: a receiver that does slow I/O should hand it to a queue.
An exception in a receiver is logged and does not stop the sync.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import Namespace, Signal

log = logging.getLogger(__name__)

_namespace = Namespace()

#: A sync run (or a plan: ``dry_run=True``) is starting, or a revert (``mode="revert"``,
#: ``trigger="revert:<run id>"``; ``undo.revert_run``). Keywords: ``mode``, ``direction``,
#: ``trigger``, ``dry_run``.
run_started = _namespace.signal("zoho-sync.run-started")
#: A run ended. Keywords: ``report`` (``sync.context.RunReport``: status, counts, message),
#: ``run_id`` (None for a plan, or a run Zoho refused before it started), ``trigger``,
#: ``dry_run``, ``duration`` (seconds).
run_finished = _namespace.signal("zoho-sync.run-finished")
#: One record could not be synced. Keywords: ``run_id``, ``direction`` (to_zoho | to_host),
#: ``contact_id``, ``zoho_id``, ``reason``, ``error_code``.
record_failed = _namespace.signal("zoho-sync.record-failed")
#: Zoho refused the stored connection (refresh refused, token revoked, scope missing): only
#: a reconnect helps. Keywords: ``reason``, ``error`` (the ``ZohoReconnectRequired``).
connection_lost = _namespace.signal("zoho-sync.connection-lost")
#: The connection works again (a reconnect, or a run that reached Zoho). No keywords.
connection_restored = _namespace.signal("zoho-sync.connection-restored")
#: The sync's credits are running out. Keywords: ``spent`` (credits in the last 24 hours,
#: of every tenant's runs on the same Zoho org, as the budget is the org's),
#: ``limit`` (ZOHO_SYNC_DAILY_CREDIT_BUDGET, None without one), ``paused`` (a run paused
#: for it), ``resumes_at`` (when a paused run resumes, or None), ``reason``.
credit_budget_low = _namespace.signal("zoho-sync.credit-budget-low")
#: A run stopped before deleting more than ZOHO_SYNC_MASS_DELETE_SHARE of the linked
#: contacts (the mass-delete breaker). Keywords: ``pending_deletes``, ``reason``, ``run_id``.
mass_delete_blocked = _namespace.signal("zoho-sync.mass-delete-blocked")
#: A mapping row stopped syncing because Zoho's field changed under it (schema drift).
#: Keywords: ``module``, ``zoho_field``, ``host_field``, ``reason``. Sent by
#: :func:`field_paused`.
mapping_field_paused = _namespace.signal("zoho-sync.field-paused")
#: A paused mapping row syncs again. Keywords: ``module``, ``zoho_field``, ``host_field``.
mapping_field_resumed = _namespace.signal("zoho-sync.field-resumed")

ALL_SIGNALS: tuple[Signal, ...] = (
    run_started,
    run_finished,
    record_failed,
    connection_lost,
    connection_restored,
    credit_budget_low,
    mass_delete_blocked,
    mapping_field_paused,
    mapping_field_resumed,
)


def send(signal: Signal, sender: Any, **details: Any) -> None:
    """Send ``signal``; a receiver that raises is logged, never allowed to stop the sync.

    The sync's own bookkeeping (history, outbox) is already written when a signal goes, so
    a host's broken receiver costs only that receiver's work.
    """
    if not signal.receivers:
        return
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **details)
        except Exception:
            log.exception("A receiver of the zoho-sync signal %s failed", signal.name)


def field_paused(
    sender: Any, *, module: str, zoho_field: str, host_field: str | None, reason: str
) -> None:
    """Announce that a mapping row is paused; the schema-drift code calls this.

    ``sender`` is the Flask app (``current_app._get_current_object()``). The extension's
    alerts open one ``field_paused`` incident per module and Zoho field.
    """
    send(
        mapping_field_paused,
        sender,
        module=module,
        zoho_field=zoho_field,
        host_field=host_field,
        reason=reason,
    )


def field_resumed(sender: Any, *, module: str, zoho_field: str, host_field: str | None) -> None:
    """Announce that a paused mapping row syncs again (its incident clears)."""
    send(
        mapping_field_resumed,
        sender,
        module=module,
        zoho_field=zoho_field,
        host_field=host_field,
    )
