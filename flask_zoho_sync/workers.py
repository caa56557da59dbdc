"""RQ worker classes that stop within a second.

RQ's worker listens for commands on a pub/sub thread that redis-py runs with
``sleep_time=60``. When it stops, RQ sends UNSUBSCRIBE and then joins that thread. If
the thread reads the UNSUBSCRIBE reply before the join clears its running flag, it goes
round once more, finds itself subscribed to nothing and waits up to ``sleep_time`` for a
subscription that never comes; redis-py 8 joins without a timeout, so the worker hangs
for a minute on Ctrl-C, on a deploy's SIGTERM, and at the end of every burst run. The
race is lost more often on a loaded machine. These classes run the same thread with a
one-second sleep: the worker still hears commands at once (a message wakes the read),
and a lost race costs a second.

The forking worker's work horses also leave alone the database connections they inherit.
``flask zoho-sync worker`` checks the sync's tables before it forks, so its pool holds a
connection; a horse that took it shared that server session with every later horse, and
on PostgreSQL the next horse's statements collided with the prepared statements the
previous one left there (psycopg prepares a query after its fifth run): every second sync
failed with ``DuplicatePreparedStatement``. Two horses at once on one socket would be worse.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, has_app_context
from rq import SimpleWorker, Worker
from rq.worker.base import BaseWorker

#: How long the pub/sub thread may wait between its checks of the running flag.
PUBSUB_SLEEP_SECONDS = 1.0


class _PromptStop(BaseWorker):
    """RQ's ``BaseWorker.subscribe`` with :data:`PUBSUB_SLEEP_SECONDS`, to mix in first."""

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=PUBSUB_SLEEP_SECONDS,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,
        )


def _forget_inherited_connections() -> None:
    """In a work horse just forked: drop the parent's pooled database connections without
    closing them (SQLAlchemy's recipe for forks: ``dispose(close=False)``), so this process
    opens its own and the parent's stay usable. Nothing to do without an app context: a
    worker started as ``rq worker`` loads the app in each horse."""
    if not has_app_context():
        return
    sqlalchemy = current_app.extensions.get("sqlalchemy")
    for engine in getattr(sqlalchemy, "engines", {}).values():
        engine.dispose(close=False)


class SyncWorker(_PromptStop, Worker):
    """RQ's forking worker, stopping promptly, whose horses open database connections of
    their own: what ``flask zoho-sync worker`` runs."""

    def main_work_horse(self, *args: Any, **kwargs: Any) -> None:
        _forget_inherited_connections()
        super().main_work_horse(*args, **kwargs)


class SimpleSyncWorker(_PromptStop, SimpleWorker):
    """RQ's in-process worker, stopping promptly: ``worker --simple`` and the tests."""
