"""ZOHO_SYNC_MODE: its default, its values, the error for anything else, and that a mode the
settings store wins over it."""

from __future__ import annotations

import pytest

from flask_zoho_sync.config import read_config
from flask_zoho_sync.errors import ConfigurationError
from flask_zoho_sync.models import SyncSettings
from flask_zoho_sync.preferences import sync_mode_of

REQUIRED = {
    "ZOHO_SYNC_CLIENT_ID": "id",
    "ZOHO_SYNC_CLIENT_SECRET": "secret",
    "ZOHO_SYNC_ENCRYPTION_KEYS": "k",
}


def test_two_way_is_the_default() -> None:
    assert read_config(REQUIRED).sync_mode == "two_way"


@pytest.mark.parametrize("value", ["export_only", " Import_Only ", "UPDATE_ONLY", "two_way"])
def test_each_mode_is_taken_in_any_case(value: str) -> None:
    assert read_config({**REQUIRED, "ZOHO_SYNC_MODE": value}).sync_mode == value.strip().lower()


def test_another_value_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigurationError) as refused:
        read_config({**REQUIRED, "ZOHO_SYNC_MODE": "read_only"})
    assert str(refused.value) == (
        "ZOHO_SYNC_MODE must be one of 'two_way', 'export_only', 'import_only', "
        "'update_only', got 'read_only'."
    )


def test_a_stored_mode_wins_over_the_config_and_a_strange_one_does_not() -> None:
    assert sync_mode_of(SyncSettings(sync_mode=None), "import_only") == "import_only"
    assert sync_mode_of(SyncSettings(sync_mode="update_only"), "import_only") == "update_only"
    assert sync_mode_of(SyncSettings(sync_mode="sideways"), "export_only") == "export_only"
