"""Fixtures shared by the whole suite: the real Redis, and the databases to run against."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

#: The suite uses its own Redis database so a developer's data in db 0 is never touched.
TEST_REDIS_URL = os.environ.get("ZOHO_SYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A connection to the real Redis, on an emptied test database."""
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        connection.ping()
    except redis.ConnectionError as exc:  # pragma: no cover - environment problem
        pytest.fail(
            f"Redis is not answering at {TEST_REDIS_URL}: start it (see README, 'Running the "
            f"tests') or point ZOHO_SYNC_TEST_REDIS_URL at one. ({exc})"
        )
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()
