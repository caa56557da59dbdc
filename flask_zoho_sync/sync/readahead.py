"""Fetch the next page of a listing while the caller merges the current one.

A pull alternates between waiting for Zoho (a page of 200 records: 100-300 ms against real
Zoho, a few ms on loopback) and merging the page into the host. Done in turn, a run costs
the sum of both; with the next page requested while the current one is merged, it costs
about the larger. The calls are the same calls in the same order, one at a time: only the
HTTP (and the JSON decoding) moves to the thread; the merge, and every use of the database
session, stays on the caller's thread, as with ``inflight.InFlight`` for the push.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: What ``next`` returns when the listing is finished.
_DONE: object = object()


def read_ahead(pages: Iterator[T], *, name: str = "zoho-sync-read") -> Iterator[T]:
    """Yield ``pages``'s items, fetching each one's successor on a thread meanwhile.

    At most one fetch is in progress, so the listing's own order and paging (Zoho's
    ``page_token`` comes with the previous page) are untouched. A failed fetch raises here,
    when the caller asks for that page, after it has finished (and committed) the previous
    one, as a plain loop would. If the caller stops early, the fetch in progress is waited
    for and its page dropped: at most one call more than a plain loop makes.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) as executor:
        upcoming = executor.submit(next, pages, _DONE)
        while True:
            page = upcoming.result()
            if page is _DONE:
                return
            upcoming = executor.submit(next, pages, _DONE)
            yield page  # type: ignore[misc]
