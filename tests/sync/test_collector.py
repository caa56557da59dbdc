"""The pull's pause of Python's cyclic garbage collector is process-wide, so it must give the
host's process back exactly as it found it, also when the merge fails."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from flask_zoho_sync.sync.collector import collector_paused


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    was_on = gc.isenabled()
    yield
    if was_on:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_while_merging_and_on_again_after() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_failed_merge_still_switches_the_collector_back_on() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the page failed")
    assert gc.isenabled()


def test_a_host_that_turned_the_collector_off_keeps_it_off() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
