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
"""

from __future__ import annotations

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


class SyncWorker(_PromptStop, Worker):
    """RQ's forking worker, stopping promptly: what ``flask zoho-sync worker`` runs."""


class SimpleSyncWorker(_PromptStop, SimpleWorker):
    """RQ's in-process worker, stopping promptly: ``worker --simple`` and the tests."""
