"""The host's own daily credit budget: a run never spends past it, pauses, and resumes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from rq.registry import ScheduledJobRegistry

from flask_zoho_sync import jobs
from flask_zoho_sync.config import read_config
from flask_zoho_sync.errors import ConfigurationError
from flask_zoho_sync.models import Run
from flask_zoho_sync.preferences import get_settings
from flask_zoho_sync.zoho.credits import CreditBudget
from flask_zoho_sync.zoho.errors import ZohoBudgetExhausted
from tests.engine.conftest import Synced
from tests.hostapp import TEST_ENCRYPTION_KEY


def budget(synced: Synced, credits: int) -> None:
    synced.state.config = replace(synced.state.config, daily_credit_budget=credits)


def runs(synced: Synced) -> list[Run]:
    with synced.host.app.app_context():
        found = synced.host.db.session.scalars(sa.select(Run).order_by(Run.id)).all()
        synced.host.db.session.expunge_all()
        return list(found)


def test_a_budget_refuses_the_call_that_would_pass_it_before_it_is_sent() -> None:
    spend = CreditBudget(15, spent=4)
    spend.reserve("POST", "/crm/v8/Leads/upsert", 100)  # ten credits: 14
    spend.reserve("GET", "/crm/v8/Leads", 0)  # one: 15, exactly the budget
    with pytest.raises(ZohoBudgetExhausted, match="budget of 15 Zoho credits") as refused:
        spend.reserve("GET", "/crm/v8/Leads", 0)
    assert spend.spent == 15
    assert "ZOHO_SYNC_DAILY_CREDIT_BUDGET" in str(refused.value)
    spend.reserve("POST", "/oauth/v2/token", 0)  # token calls are not CRM credits


def test_the_sync_leaves_the_orgs_last_credits_to_its_other_integrations() -> None:
    spend = CreditBudget(None, keep_for_others=100)
    spend.reserve("POST", "/crm/v8/Leads/upsert", 100)  # Zoho has not said: nothing known
    spend.zoho_reports(115)  # X-API-CREDITS-REMAINING on that answer
    spend.reserve("POST", "/crm/v8/Leads/upsert", 100)  # sent in parallel: 105 left
    spend.zoho_reports(115)  # an answer older than that call is not believed
    assert spend.org_remaining == 105 and spend.remaining is None
    with pytest.raises(ZohoBudgetExhausted, match="105 credits left for the whole org") as refused:
        spend.reserve("POST", "/crm/v8/Leads/upsert", 100)
    assert refused.value.setting == "ZOHO_SYNC_CREDIT_RESERVE"
    assert "lower ZOHO_SYNC_CREDIT_RESERVE" in str(refused.value)
    spend.reserve("GET", "/crm/v8/Leads", 0)  # one credit still fits: 104 left


def test_the_org_reserve_pauses_a_run_on_zohos_own_count(synced: Synced) -> None:
    synced.state.config = replace(synced.state.config, credit_reserve=1000)
    zoho = synced.zoho
    zoho.faults(daily_credits=3000)
    zoho.faults(consume_credits=1975)  # past half: Zoho sends its count; about 1,020 left
    for n in range(250):
        synced.add_contact(last_name=f"H{n}", email=f"h{n}@example.org")
    report = synced.sync(mode="all")  # the pull's first listing brings Zoho's count
    assert report.status == "paused", report.message
    assert "Lower ZOHO_SYNC_CREDIT_RESERVE" in (report.message or "")
    assert zoho.stats()["credits_remaining"] >= 1000
    assert 0 < len(synced.leads()) < 250  # what fitted went; the rest waits for credits


def test_a_bad_budget_setting_is_named() -> None:
    config = {
        "ZOHO_SYNC_CLIENT_ID": "a",
        "ZOHO_SYNC_CLIENT_SECRET": "b",
        "ZOHO_SYNC_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
    }
    with pytest.raises(
        ConfigurationError, match=r"DAILY_CREDIT_BUDGET must be a whole number of credits"
    ):
        read_config({**config, "ZOHO_SYNC_DAILY_CREDIT_BUDGET": "lots"})
    assert read_config(config).daily_credit_budget == 0
    with pytest.raises(ConfigurationError, match=r"CREDIT_RESERVE must be at least 0, got -5"):
        read_config({**config, "ZOHO_SYNC_CREDIT_RESERVE": "-5"})
    assert read_config(config).credit_reserve == 1000


def test_a_sync_pauses_at_its_budget_and_resumes_when_the_window_frees_credits(
    synced: Synced,
) -> None:
    began = datetime.now(timezone.utc)
    synced.first_manual_sync()  # automatic sync writes nothing before it
    with synced.host.app.app_context():
        get_settings(synced.host.db.session).auto_sync = True
        synced.host.db.session.commit()
    synced.state.preferences_changed()
    synced.state.config = replace(synced.state.config, push_delay=0)
    for number in range(250):
        synced.add_contact(last_name=f"B{number}", email=f"b{number}@example.org")
    # The first sync's pull (a COQL query of LIMIT 2,000: 3 credits, the first sync's as
    # any full pull's) and the rest of the day's reads leave room for one batch of 100
    # upserts (10 credits), not two.
    budget(synced, 19)
    credits_before = synced.zoho.stats()["total_credits"]
    with synced.host.app.app_context():
        outcome = jobs.run_sync_job(mode="outbox", trigger="auto")
    assert outcome["status"] == "paused"
    assert "resumes about" in outcome["message"]
    spent = synced.zoho.stats()["total_credits"] - credits_before
    assert spent <= 19  # never over, not even by the batch that would have passed it
    assert len(synced.leads()) == 100  # the batch that fitted went; the rest waits
    paused_run = runs(synced)[-1]
    # The run's row carries what it spent (the field list read before it is not a run's).
    assert paused_run.status == "paused" and 0 < paused_run.credits <= spent
    # While paused, neither a commit nor the scheduler starts runs that would only pause.
    synced.add_contact(last_name="Late", email="late@example.org")
    with synced.host.app.app_context():
        tick = jobs.tick(synced.state)
        scheduled = ScheduledJobRegistry(queue=jobs.queue_for(synced.state)).get_job_ids()
    resume = [job_id for job_id in scheduled if "resume" in job_id]
    # The one push the first commits asked for (run directly above); none for "Late".
    assert len([job_id for job_id in scheduled if "push" in job_id]) == 1
    assert tick.message and tick.message.startswith("Paused until")
    assert tick.push_scheduled is None and tick.pull_scheduled is None
    assert tick.outbox_pending == 151
    assert resume == [
        f"zoho-sync-resume-{int(datetime.fromisoformat(outcome['resumes_at']).timestamp())}"
    ]
    # A day after the oldest credits in the window were spent (the first sync's or this
    # run's): between this test's start and now, plus 24 hours. A bound, not a tolerance,
    # so a slow machine cannot fail it.
    resumes_at = datetime.fromisoformat(outcome["resumes_at"])
    day = timedelta(hours=24)
    assert began + day <= resumes_at <= datetime.now(timezone.utc) + day
    # A day later the window has freed the credits; the resume job finishes the work.
    with synced.host.app.app_context():
        session = synced.host.db.session
        for run in session.scalars(sa.select(Run)):
            run.started_at = run.started_at - timedelta(hours=25)
        session.commit()
        synced.state.redis().delete(jobs._key(synced.state, "paused-until"))
        budget(synced, 40)
        outcome = jobs.run_sync_job(mode="outbox", trigger="auto")
    assert outcome["status"] == "succeeded", outcome["message"]
    leads = synced.leads()
    assert len(leads) == 251 and len(synced.zoho.records("Leads")) == 251
