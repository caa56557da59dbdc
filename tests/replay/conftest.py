"""The Zoho client's unit-test fixtures (an EU connection, a fake clock, recorded sleeps,
`responses`), shared with the replay tests that serve recordings to the client."""

from tests.zoho.conftest import (  # noqa: F401 - pytest finds fixtures by name
    client,
    clock,
    manager,
    meter,
    oauth,
    rsps,
    sleeps,
    store,
    valid_tokens,
)
