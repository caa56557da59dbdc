"""The engine tests' connected host (``synced``), for the operations tests."""

from tests.engine.conftest import synced, synced_config  # noqa: F401  (fixtures)
