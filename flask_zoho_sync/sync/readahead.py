"""Fetch the next pages of a listing while the caller merges the current ones.

A pull alternates between waiting for Zoho (a page of 200 records: 100-300 ms against real
Zoho, a few ms on loopback) and merging pages into the host. Done in turn, a run costs the
sum of both; with the next pages requested while the current one is merged, it costs about
the larger. The calls are the same calls in the same order, one at a time: only the HTTP
(and the JSON decoding) moves to a thread; the merge, and every use of the database
session, stays on the caller's thread, as with ``inflight.InFlight`` for the push.

The caller takes the pages that are already waiting together (:meth:`ReadAhead.take`), so
work that costs the same for one page as for several (looking host contacts up by email,
a scan of the host's table) is done once for all of them when the merge, not Zoho, is the
slower side.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Put on the queue after the last page.
_DONE: Any = object()


class _Failed:
    """The listing raised: the error travels to the caller through the queue."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """Reads ``pages`` on a thread, at most ``depth`` pages ahead of the caller.

    A failed fetch raises in :meth:`take`, after the pages fetched before it were taken
    (and merged and committed), as a plain loop would. If the caller stops early, the fetch
    in progress is waited for and the pages not taken are dropped: at most ``depth + 1``
    calls more than a plain loop makes.
    """

    def __init__(self, pages: Iterable[T], *, depth: int = 1, name: str = "zoho-sync-read") -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._pages = iter(pages)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._failure: BaseException | None = None
        # The reader runs in the caller's context (its tenant, ``flask_zoho_sync.tenancy``):
        # a token refresh on this thread must read the caller's connection.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._fill,), name=name, daemon=True
        )
        self._thread.start()

    def _fill(self) -> None:
        while not self._stop.is_set():
            try:
                page = next(self._pages)
            except StopIteration:
                self._queue.put(_DONE)
                return
            except BaseException as exc:  # handed to the caller, which raises it
                self._queue.put(_Failed(exc))
                return
            self._queue.put(page)

    def take(self, limit: int) -> list[T]:
        """The next page (waiting for it) and up to ``limit - 1`` more already fetched;
        an empty list once the listing is finished."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            self._finished = True
            raise failure
        if self._finished:
            return []
        taken: list[T] = []
        item = self._queue.get()
        while True:
            if item is _DONE:
                self._finished = True
                break
            if isinstance(item, _Failed):
                if not taken:
                    self._finished = True
                    raise item.error
                self._failure = item.error  # raised at the next take, after these pages
                break
            taken.append(item)
            if len(taken) >= limit:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return taken

    def close(self) -> None:
        """Stop reading: wait for the fetch in progress and drop what was not taken."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)  # unblock a thread waiting to put a page
        self._finished = True


class InOrder(Generic[T]):
    """:class:`ReadAhead`'s interface without the thread: a page at a time, fetched when
    taken (a dry run reads this way, as the push's plan sends nothing on threads)."""

    def __init__(self, pages: Iterable[T]) -> None:
        self._pages = iter(pages)

    def take(self, limit: int) -> list[T]:
        page = next(self._pages, _DONE)
        return [] if page is _DONE else [page]

    def close(self) -> None:
        return None
