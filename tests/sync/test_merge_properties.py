"""Properties of the merge over random snapshots and edits: convergence and no loops."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flask_zoho_sync.sync import (
    ConflictPolicy,
    Direction,
    FieldMapping,
    GroupMapping,
    Mapping,
    SystemFieldMapping,
    merge,
)
from flask_zoho_sync.sync.merge import merge_new
from flask_zoho_sync.zoho.timefmt import UTC
from tests.sync.conftest import build_mapping

MAPPINGS = {
    policy: build_mapping(
        "Leads",
        fields=[
            FieldMapping("first_name", "First_Name"),
            FieldMapping("email", "Email"),
            FieldMapping("city", "City", direction=Direction.TO_ZOHO),
            FieldMapping("country", "Country", direction=Direction.TO_HOST),
            FieldMapping("interests", "Interests"),
            FieldMapping("last_visit", "Last_Visit"),
            FieldMapping("score", "Score"),
        ],
        groups=[GroupMapping("newsletter", "Newsletter")],
        system=[SystemFieldMapping("subscription", "Email_Opt_Out", inverted=True)],
        default_policy=policy,
    )
    for policy in ConflictPolicy
}

TEXT = st.sampled_from([None, "", "Ada", " Ada ", "ada", "Bo"])
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "field:first_name": TEXT,
    "field:email": st.sampled_from([None, "a@x.io", "A@X.IO", "b@x.io"]),
    "field:city": TEXT,
    "field:country": TEXT,
    "field:interests": st.sampled_from([None, [], ["Golf"], ["Golf", "Chess"], ["Chess", "Golf"]]),
    "field:last_visit": st.sampled_from(
        [None, "2026-04-04T15:30:00+00:00", "2026-04-05T02:30:00+11:00", "2026-04-04T16:30:00Z"]
    ),
    "field:score": st.sampled_from([None, "7.5", "7.50", "7.499", "8"]),
    "group:newsletter": st.sampled_from([None, True, False]),
    # An unknown subscription status is left out rather than None (host_to_canonical).
    "system:subscription": st.booleans(),
}
KEYS = list(VALUES)
MOMENT = datetime(2026, 4, 5, 2, 30, tzinfo=UTC)
TIMES = st.sampled_from([None, MOMENT, MOMENT + timedelta(seconds=1)])


def side() -> st.SearchStrategy[dict[str, Any]]:
    """Some keys reported, others left out (a side that did not say)."""
    return st.fixed_dictionaries({}, optional=VALUES)


def effective(values: dict[str, Any], base: dict[str, Any] | None, key: str) -> Any:
    """What a side holds for ``key``: its report, or the base when it did not report it."""
    if key in values:
        return values[key]
    return (base or {}).get(key)


@settings(max_examples=400, deadline=None)
@given(
    base=st.none() | side(),
    host=side(),
    zoho=side(),
    policy=st.sampled_from(list(ConflictPolicy)),
    host_at=TIMES,
    zoho_at=TIMES,
)
def test_after_the_writes_both_sides_agree_and_a_second_merge_is_a_no_op(
    base: dict[str, Any] | None,
    host: dict[str, Any],
    zoho: dict[str, Any],
    policy: ConflictPolicy,
    host_at: datetime | None,
    zoho_at: datetime | None,
) -> None:
    mapping: Mapping = MAPPINGS[policy]
    result = merge(base, host, zoho, mapping, host_modified_at=host_at, zoho_modified_at=zoho_at)

    for key in result.to_zoho:
        assert mapping.binding(key).direction.writes_zoho
    for key in result.to_host:
        assert mapping.binding(key).direction.writes_host
    if effective(host, base, "system:subscription") is False:
        assert result.to_host.get("system:subscription") is not True  # never re-subscribed

    host_after = {key: effective(host, base, key) for key in KEYS} | result.to_host
    zoho_after = {key: effective(zoho, base, key) for key in KEYS} | result.to_zoho
    for key in KEYS:
        if mapping.binding(key).direction is Direction.BOTH:
            assert mapping.values_equal(key, host_after[key], zoho_after[key]), key
            assert mapping.values_equal(key, result.new_base[key], host_after[key]), key

    again = merge(
        result.new_base,
        host_after,
        zoho_after,
        mapping,
        host_modified_at=zoho_at,
        zoho_modified_at=host_at,
    )
    assert again.to_zoho == {}
    assert again.to_host == {}
    assert again.conflicts == []


@settings(max_examples=300, deadline=None)
@given(
    zoho=st.fixed_dictionaries(
        {}, optional={**VALUES, "system:subscription": st.sampled_from([None, True, False])}
    ),
    policy=st.sampled_from(list(ConflictPolicy)),
    zoho_at=TIMES,
)
def test_a_record_new_to_the_host_merges_as_the_general_merge_would(
    zoho: dict[str, Any], policy: ConflictPolicy, zoho_at: datetime | None
) -> None:
    mapping = MAPPINGS[policy]
    general = merge(None, {}, zoho, mapping, host_modified_at=None, zoho_modified_at=zoho_at)
    assert merge_new(zoho, mapping) == general
