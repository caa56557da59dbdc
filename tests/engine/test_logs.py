"""Logs of a whole sync carry no token, secret or contact email (issue: nothing let out)."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from flask_zoho_sync.models import Connection
from tests.engine.conftest import Synced


def test_a_sync_logs_no_token_secret_or_email(
    synced: Synced, caplog: pytest.LogCaptureFixture
) -> None:
    for index in range(5):
        synced.add_contact(last_name=f"L{index}", email=f"private{index}@example.org")
    synced.zoho.create_record("Leads", {"Last_Name": "Z", "Email": "zoho.private@example.org"})
    synced.zoho.faults(
        fail_next=[{"status": 429, "path_contains": "/Leads"}], expire_access_tokens=True
    )
    with caplog.at_level(logging.DEBUG):
        report = synced.sync(mode="all")
    assert report.status == "succeeded", report.message
    with synced.host.app.app_context():
        store = synced.state.token_store().load()
        assert store is not None
        secrets = [store.refresh_token, store.access_token, synced.zoho.client_secret]
        assert (
            synced.host.db.session.scalar(sa.select(sa.func.count()).select_from(Connection)) == 1
        )
    text = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert caplog.records, "the sync should log what it does"
    for secret in secrets:
        assert secret and secret not in text
    assert "private" not in text and "@example.org" not in text
