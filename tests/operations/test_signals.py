"""The blinker signals a host subscribes to, sent by real runs against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from blinker import Signal

from flask_zoho_sync import signals
from flask_zoho_sync.incidents import open_incidents
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.zoho.errors import ZohoError, ZohoReconnectRequired, ZohoTokenRejected
from tests.engine.conftest import Synced


@contextmanager
def heard(signal: Signal, synced: Synced) -> Iterator[list[dict[str, Any]]]:
    """What ``signal`` told a receiver subscribed for the host app, as a host would."""
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **details: Any) -> None:
        calls.append({"sender": sender, **details})

    with signal.connected_to(receiver, sender=synced.host.app):
        yield calls


def _new_leads(synced: Synced, count: int) -> None:
    for number in range(count):
        synced.add_contact(first_name="New", last_name=f"N{number}", email=f"n{number}@example.com")


def test_a_run_is_announced_when_it_starts_and_when_it_ends_with_its_report(
    synced: Synced,
) -> None:
    _new_leads(synced, 3)
    with (
        heard(signals.run_started, synced) as started,
        heard(signals.run_finished, synced) as finished,
    ):
        report = synced.sync(mode="all", trigger="cli")
    assert [(call["mode"], call["trigger"], call["dry_run"]) for call in started] == [
        ("all", "cli", False)
    ]
    assert len(finished) == 1
    assert finished[0]["sender"] is synced.host.app
    assert finished[0]["report"] is report
    assert finished[0]["report"].counts["to_zoho.create"] == 3
    assert isinstance(finished[0]["run_id"], int)
    assert finished[0]["duration"] >= 0


def test_each_failed_record_is_announced_with_zohos_reason(synced: Synced) -> None:
    _new_leads(synced, 3)
    synced.zoho.faults(
        fail_records=[{"positions": [1], "code": "INVALID_DATA", "message": "invalid data"}]
    )
    with heard(signals.record_failed, synced) as failed:
        report = synced.sync(mode="all", trigger="cli")
    assert report.status == "partial"
    assert len(failed) == 1
    assert failed[0]["direction"] == "to_zoho"
    assert failed[0]["error_code"] == "INVALID_DATA"
    assert failed[0]["contact_id"]
    assert failed[0]["run_id"] is not None


_REFUSED_401 = {
    "status": 401,
    "path_contains": "/crm/",
    "body": {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token"},
}
#: The ways Zoho ends a connection: the refresh token refused when the access token ran out;
#: both revoked while the access token still looked valid (401, then the refresh refused);
#: and the access token refused again after a refresh that worked (a revoked grant).
LOSSES = {
    "refresh refused": {"revoke_all_tokens": True, "expire_access_tokens": True},
    "token revoked": {"revoke_all_tokens": True},
    "token refused after a refresh": {"fail_next": [_REFUSED_401] * 4},
}


@pytest.mark.parametrize("loss", list(LOSSES))
def test_a_lost_connection_is_announced_and_opens_one_incident(synced: Synced, loss: str) -> None:
    synced.first_manual_sync()
    synced.zoho.faults(**LOSSES[loss])
    with heard(signals.connection_lost, synced) as lost:
        first = synced.sync(trigger="cli")
        second = synced.sync(trigger="cli")
    assert first.status == second.status == "failed"
    assert len(lost) == 2  # a signal per run that met it...
    assert "Reconnect" in lost[0]["reason"] or "reconnect" in lost[0]["reason"]
    error = lost[0]["error"]
    if loss == "token refused after a refresh":
        assert isinstance(error, ZohoTokenRejected) and error.code == "INVALID_TOKEN"
    else:  # the accounts server refused the refresh token
        assert isinstance(error, ZohoReconnectRequired) and error.code == "invalid_code"
    with synced.host.app.app_context():
        kinds = [incident.kind for incident in open_incidents(synced.host.db.session)]
    assert kinds == ["connection_lost"]  # ...and one incident, not run_failed besides


def test_the_mass_delete_breaker_is_announced(synced: Synced) -> None:
    ids = []
    for number in range(20):
        ids.append(
            synced.add_contact(first_name="D", last_name=f"D{number}", email=f"d{number}@x.org")
        )
    synced.first_manual_sync()
    for contact_id in ids[:15]:
        synced.delete_contact(contact_id)
    with heard(signals.mass_delete_blocked, synced) as blocked:
        report = synced.sync(trigger="cli")
    assert report.status == "needs_confirmation"
    assert [call["pending_deletes"] for call in blocked] == [15]
    with synced.host.app.app_context():
        kinds = [incident.kind for incident in open_incidents(synced.host.db.session)]
    assert kinds == ["breaker_tripped"]
    synced.sync(trigger="cli", confirm_deletes=True)
    with synced.host.app.app_context():
        assert open_incidents(synced.host.db.session) == []


def test_a_paused_field_is_announced_and_its_incident_clears_when_it_resumes(
    synced: Synced,
) -> None:
    app = synced.host.app
    with heard(signals.mapping_field_paused, synced) as paused, app.app_context():
        session = synced.host.db.session
        signals.field_paused(
            app, module="Leads", zoho_field="Phone", host_field="phone", reason="deleted in Zoho"
        )
        signals.field_paused(
            app, module="Leads", zoho_field="Phone", host_field="phone", reason="deleted in Zoho"
        )
        session.commit()
        assert [incident.subject for incident in open_incidents(session)] == ["Leads.Phone"]
        assert "phone <-> Phone" in open_incidents(session)[0].summary
        signals.field_resumed(app, module="Leads", zoho_field="Phone", host_field="phone")
        session.commit()
        assert open_incidents(session) == []
    assert [call["zoho_field"] for call in paused] == ["Phone", "Phone"]


def test_a_receiver_that_raises_does_not_stop_the_sync(synced: Synced) -> None:
    def broken(sender: Any, **details: Any) -> None:
        raise RuntimeError("the host's receiver is broken")

    _new_leads(synced, 2)
    with signals.run_started.connected_to(broken), signals.run_finished.connected_to(broken):
        report = synced.sync(mode="all", trigger="cli")
    assert report.status == "succeeded"
    assert len(synced.leads()) == 2


def test_a_run_paused_for_credits_announces_the_low_budget_and_it_clears_when_spent_less(
    synced: Synced,
) -> None:
    _new_leads(synced, 30)
    synced.state.config = replace(synced.state.config, daily_credit_budget=3)
    with heard(signals.credit_budget_low, synced) as low:
        report = synced.sync(mode="all", trigger="cli")
    assert report.status == "paused"
    assert [(call["paused"], call["limit"]) for call in low] == [(True, 3)]
    assert "Paused" in low[0]["reason"]
    with synced.host.app.app_context():
        assert [i.kind for i in open_incidents(synced.host.db.session)] == ["budget_low"]
    synced.state.config = replace(synced.state.config, daily_credit_budget=10_000)
    assert synced.sync(mode="all", trigger="cli").status == "succeeded"
    with synced.host.app.app_context():
        assert open_incidents(synced.host.db.session) == []


def test_a_run_refused_before_it_starts_is_announced_as_finished_too(synced: Synced) -> None:
    """Zoho refuses the field list a run reads first: the run never starts, yet a receiver
    that pairs run_started with run_finished (runs going on) hears both."""
    synced.first_manual_sync()
    synced.state.config = replace(synced.state.config, fields_max_age=0)  # read every run
    synced.zoho.faults(revoke_all_tokens=True, expire_access_tokens=True)
    with (
        heard(signals.run_started, synced) as started,
        heard(signals.run_finished, synced) as finished,
        heard(signals.connection_lost, synced) as lost,
        pytest.raises(ZohoReconnectRequired),
    ):
        synced.sync(trigger="cli")
    assert len(started) == len(finished) == len(lost) == 1
    assert finished[0]["run_id"] is None  # no run row was written
    assert finished[0]["report"].status == "failed"
    assert finished[0]["report"].error is lost[0]["error"]
    with synced.host.app.app_context():
        kinds = [incident.kind for incident in open_incidents(synced.host.db.session)]
    assert kinds == ["connection_lost"]


def test_a_run_zoho_refuses_before_it_starts_opens_a_run_failed_incident(
    synced: Synced,
) -> None:
    synced.first_manual_sync()
    synced.state.config = replace(synced.state.config, fields_max_age=0)  # read every run
    refusal = {"code": "INVALID_REQUEST", "details": {}, "message": "unable to process"}
    synced.zoho.faults(
        fail_next=[{"status": 400, "path_contains": "/settings/fields", "body": refusal}]
    )
    with heard(signals.run_finished, synced) as finished, pytest.raises(ZohoError):
        synced.sync(trigger="cli")
    assert [call["report"].status for call in finished] == ["failed"]
    with synced.host.app.app_context():
        [incident] = open_incidents(synced.host.db.session)
    assert incident.kind == "run_failed"
    assert "INVALID_REQUEST" in incident.summary
    assert synced.sync(trigger="cli").status == "succeeded"  # and a run that ends clears it
    with synced.host.app.app_context():
        assert open_incidents(synced.host.db.session) == []


def test_a_connection_the_tick_finds_lost_is_announced_before_any_run(synced: Synced) -> None:
    """The tick renews Zoho's notification channel between runs; a refused token found there
    is told then, and health fails, without waiting for the next run to meet it."""
    synced.first_manual_sync()
    with synced.host.app.app_context():
        get_settings(synced.host.db.session).auto_sync = True
        synced.host.db.session.commit()
    synced.state.preferences_changed()
    synced.state.config = replace(synced.state.config, base_url="https://crm.example.com")
    synced.zoho.faults(revoke_all_tokens=True, expire_access_tokens=True)
    runner = synced.host.app.test_cli_runner()
    with heard(signals.connection_lost, synced) as lost:
        tick = runner.invoke(args=["zoho-sync", "tick"])
    assert tick.exit_code == 0, tick.output
    assert '"notifications": "failed: ' in tick.output
    assert len(lost) == 1 and isinstance(lost[0]["error"], ZohoReconnectRequired)
    check = runner.invoke(args=["zoho-sync", "status", "--check"])
    assert check.exit_code == 1
    assert check.output.startswith("UNHEALTHY: The Zoho connection is lost: ")
