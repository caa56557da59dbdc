"""Credits of the runs going on now on one org, held in Redis: a run's budget counts what
the others spend while they run, forgets a run once it ended (its credits are then in the
database) or died long ago, and goes on without the count when Redis does not answer."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from flask_zoho_sync.zoho.credits import CreditBudget
from flask_zoho_sync.zoho.errors import ZohoBudgetExhausted
from flask_zoho_sync.zoho.running_credits import RedisRunningCredits

pytestmark = pytest.mark.redis

KEY = "zoho_sync:credits-running:client:org-1"


def test_a_budget_counts_what_another_run_on_the_org_spends_while_it_runs(
    redis_client: redis.Redis,
) -> None:
    north = RedisRunningCredits(redis_client, KEY, run="north-run")
    south = RedisRunningCredits(redis_client, KEY, run="south-run")
    north_budget = CreditBudget(10, spent=0, running=north)
    south_budget = CreditBudget(10, spent=0, running=south)

    for _ in range(6):  # north's run: six one-credit calls
        north_budget.reserve("GET", "/crm/v8/Leads", 10)
    assert south.of_others() == 6 and north.of_others() == 0

    for _ in range(4):
        south_budget.reserve("GET", "/crm/v8/Leads", 10)
    with pytest.raises(ZohoBudgetExhausted) as refused:
        south_budget.reserve("GET", "/crm/v8/Leads", 10)
    assert "has 0 left (10 used in the last 24 hours, of which 6 by other sites" in str(
        refused.value
    )
    with pytest.raises(ZohoBudgetExhausted):  # and north sees south's four as well
        north_budget.reserve("GET", "/crm/v8/Leads", 10)

    north.release()  # north ended: its six are in the database from now on
    assert south.of_others() == 0
    south_budget.reserve("GET", "/crm/v8/Leads", 10)


def test_a_run_that_died_long_ago_no_longer_counts(redis_client: redis.Redis) -> None:
    dead = RedisRunningCredits(redis_client, KEY, run="dead-run", ttl_seconds=60)
    dead.add(50)
    redis_client.hset(KEY, "dead-run:at", int(time.time()) - 3600)  # its last credit, an hour ago
    alive = RedisRunningCredits(redis_client, KEY, run="alive-run", ttl_seconds=60)
    alive.add(3)

    assert RedisRunningCredits(redis_client, KEY, ttl_seconds=60).of_others() == 3
    assert 0 < redis_client.ttl(KEY) <= 60  # the whole tally goes once no run spends


def test_without_redis_the_run_goes_on_under_the_databases_figure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    running = RedisRunningCredits(down, KEY, run="lonely")
    budget = CreditBudget(5, spent=2, running=running)

    with caplog.at_level(logging.WARNING, logger="flask_zoho_sync.zoho.running_credits"):
        budget.reserve("GET", "/crm/v8/Leads", 10)
        budget.reserve("GET", "/crm/v8/Leads", 10)
        running.release()
    assert budget.spent == 4
    warnings = [r for r in caplog.records if "running credits" in r.getMessage()]
    assert len(warnings) == 1  # said once, not for every call
