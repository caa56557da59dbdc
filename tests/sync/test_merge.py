"""Three-way merge per field: who changed what since the last sync, and who wins a conflict."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from flask_zoho_sync.sync import (
    ConflictPolicy,
    Direction,
    FieldMapping,
    GroupMapping,
    Mapping,
    MergeResult,
    SystemFieldMapping,
    diff,
    merge,
)
from flask_zoho_sync.zoho.timefmt import UTC
from tests.sync.conftest import build_mapping

EARLIER = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LATER = EARLIER + timedelta(minutes=5)


def make_mapping(policy: ConflictPolicy = ConflictPolicy.NEWEST) -> Mapping:
    return build_mapping(
        "Leads",
        fields=[
            FieldMapping("first_name", "First_Name"),
            FieldMapping("email", "Email"),
            FieldMapping("phone", "Phone"),
            FieldMapping("job_title", "Designation"),
            FieldMapping("city", "City", direction=Direction.TO_ZOHO),
            FieldMapping("country", "Country", direction=Direction.TO_HOST),
        ],
        groups=[GroupMapping("newsletter", "Newsletter")],
        system=[SystemFieldMapping("subscription", "Email_Opt_Out", inverted=True)],
        default_policy=policy,
    )


MAPPING = make_mapping()

BASE = {
    "field:first_name": "Ada",
    "field:email": "ada@example.com",
    "field:phone": "111",
    "field:job_title": "Engineer",
    "field:city": "Sydney",
    "field:country": "Australia",
    "group:newsletter": True,
    "system:subscription": True,
}


def run(
    host_changes: dict[str, Any],
    zoho_changes: dict[str, Any],
    *,
    base: dict[str, Any] | None = BASE,
    mapping: Mapping = MAPPING,
    host_at: datetime | None = EARLIER,
    zoho_at: datetime | None = LATER,
) -> MergeResult:
    start = dict(base or {})
    return merge(
        base,
        {**start, **host_changes},
        {**start, **zoho_changes},
        mapping,
        host_modified_at=host_at,
        zoho_modified_at=zoho_at,
    )


def test_nothing_changed_means_nothing_to_write() -> None:
    result = run({}, {})
    assert (result.to_zoho, result.to_host, result.conflicts) == ({}, {}, [])
    assert result.new_base == BASE


def test_a_host_edit_goes_to_zoho() -> None:
    result = run({"field:phone": "222"}, {})
    assert result.to_zoho == {"field:phone": "222"}
    assert result.to_host == {}
    assert result.new_base["field:phone"] == "222"


def test_a_zoho_edit_goes_to_the_host() -> None:
    result = run({}, {"field:job_title": "CTO"})
    assert result.to_host == {"field:job_title": "CTO"}
    assert result.to_zoho == {}


def test_different_fields_edited_on_each_side_are_both_kept() -> None:
    # Whole-record last-writer-wins would lose the host's phone (Zoho is newer).
    result = run({"field:phone": "222"}, {"field:job_title": "CTO"})
    assert result.to_zoho == {"field:phone": "222"}
    assert result.to_host == {"field:job_title": "CTO"}
    assert result.conflicts == []
    assert result.new_base["field:phone"] == "222"
    assert result.new_base["field:job_title"] == "CTO"


def test_the_same_edit_on_both_sides_writes_nothing_but_moves_the_base() -> None:
    result = run({"field:email": "ADA@new.example"}, {"field:email": "ada@new.example"})
    assert (result.to_zoho, result.to_host, result.conflicts) == ({}, {}, [])
    assert mapping_equal("field:email", result.new_base["field:email"], "ada@new.example")


def mapping_equal(key: str, a: Any, b: Any) -> bool:
    return MAPPING.values_equal(key, a, b)


def test_a_change_that_only_differs_in_form_is_no_change() -> None:
    result = run({"field:first_name": "  Ada "}, {"field:email": "ADA@EXAMPLE.COM"})
    assert (result.to_zoho, result.to_host, result.conflicts) == ({}, {}, [])


# --- conflicts, one policy at a time --------------------------------------------------------


def test_newest_wins_gives_a_conflict_to_the_later_side() -> None:
    result = run({"field:phone": "222"}, {"field:phone": "333"}, host_at=EARLIER, zoho_at=LATER)
    assert result.to_host == {"field:phone": "333"}
    assert result.to_zoho == {}
    [conflict] = result.conflicts
    assert (conflict.key, conflict.base, conflict.host, conflict.zoho) == (
        "field:phone",
        "111",
        "222",
        "333",
    )
    assert conflict.resolution == "zoho"
    assert "newest wins" in conflict.reason and "Zoho changed at 2026-03-01 09:05:00Z" in (
        conflict.reason
    )
    assert result.new_base["field:phone"] == "333"


def test_newest_wins_gives_the_host_its_later_edit() -> None:
    result = run({"field:phone": "222"}, {"field:phone": "333"}, host_at=LATER, zoho_at=EARLIER)
    assert result.to_zoho == {"field:phone": "222"}
    assert result.conflicts[0].resolution == "host"


def test_a_tie_goes_to_the_host_and_says_so() -> None:
    same_second = EARLIER + timedelta(microseconds=400_000)
    result = run(
        {"field:phone": "222"}, {"field:phone": "333"}, host_at=same_second, zoho_at=EARLIER
    )
    [conflict] = result.conflicts
    assert conflict.resolution == "host"
    assert "ties go to the host" in conflict.reason


def test_an_unknown_modification_time_goes_to_the_host_and_says_so() -> None:
    result = run({"field:phone": "222"}, {"field:phone": "333"}, host_at=None)
    assert result.conflicts[0].resolution == "host"
    assert "unknown" in result.conflicts[0].reason


def test_host_wins_policy_ignores_times() -> None:
    result = run(
        {"field:phone": "222"},
        {"field:phone": "333"},
        mapping=make_mapping(ConflictPolicy.HOST_WINS),
    )
    assert result.to_zoho == {"field:phone": "222"}
    assert result.conflicts[0].reason == "conflict policy says the host wins"


def test_zoho_wins_policy_ignores_times() -> None:
    result = run(
        {"field:phone": "222"},
        {"field:phone": "333"},
        mapping=make_mapping(ConflictPolicy.ZOHO_WINS),
        host_at=LATER,
        zoho_at=EARLIER,
    )
    assert result.to_host == {"field:phone": "333"}
    assert result.conflicts[0].resolution == "zoho"


def test_a_per_field_policy_overrides_the_default() -> None:
    mapping = build_mapping(
        "Leads",
        fields=[
            FieldMapping("phone", "Phone", policy=ConflictPolicy.ZOHO_WINS),
            FieldMapping("email", "Email"),
        ],
        default_policy=ConflictPolicy.HOST_WINS,
    )
    base = {"field:phone": "1", "field:email": "a@x.io"}
    result = run(
        {"field:phone": "2", "field:email": "b@x.io"},
        {"field:phone": "3", "field:email": "c@x.io"},
        base=base,
        mapping=mapping,
    )
    assert result.to_host == {"field:phone": "3"}
    assert result.to_zoho == {"field:email": "b@x.io"}


# --- one-way keys -----------------------------------------------------------------------------


def test_a_zoho_edit_of_a_to_zoho_field_is_ignored() -> None:
    result = run({}, {"field:city": "Perth"})
    assert "field:city" not in result.to_host
    assert "field:city" not in result.to_zoho
    assert result.new_base["field:city"] == "Sydney"


def test_a_host_edit_of_a_to_zoho_field_wins_even_against_a_zoho_edit() -> None:
    result = run({"field:city": "Melbourne"}, {"field:city": "Perth"})
    assert result.to_zoho == {"field:city": "Melbourne"}
    assert result.conflicts == []


def test_a_host_edit_of_a_to_host_field_is_ignored() -> None:
    result = run({"field:country": "New Zealand"}, {})
    assert result.to_zoho == {}
    assert result.new_base["field:country"] == "Australia"


def test_a_zoho_edit_of_a_to_host_field_reaches_the_host() -> None:
    result = run({}, {"field:country": "New Zealand"})
    assert result.to_host == {"field:country": "New Zealand"}


# --- first link (no base) ------------------------------------------------------------------------


def test_first_link_takes_values_over_blanks_on_either_side() -> None:
    host = {"field:first_name": "Ada", "field:phone": None, "field:city": None}
    zoho = {"field:first_name": None, "field:phone": "111", "field:country": "Australia"}
    result = merge(None, host, zoho, MAPPING, host_modified_at=EARLIER, zoho_modified_at=LATER)
    assert result.to_zoho == {"field:first_name": "Ada"}
    assert result.to_host == {"field:phone": "111", "field:country": "Australia"}
    assert result.conflicts == []


@pytest.mark.parametrize(("host_member", "zoho_member"), [(True, False), (False, True)])
def test_first_link_keeps_a_group_ticked_on_either_side(
    host_member: bool, zoho_member: bool
) -> None:
    host = {"group:newsletter": host_member}
    zoho = {"group:newsletter": zoho_member}
    # Whichever side is newer, linking never drops a membership.
    for host_at, zoho_at in ((EARLIER, LATER), (LATER, EARLIER)):
        result = merge(
            None, host, zoho, MAPPING, host_modified_at=host_at, zoho_modified_at=zoho_at
        )
        assert result.new_base["group:newsletter"] is True
        assert result.conflicts == []


def test_first_link_differences_are_conflicts_settled_by_policy() -> None:
    host = {"field:job_title": "Engineer", "field:email": "ada@example.com"}
    zoho = {"field:job_title": "CTO", "field:email": "ADA@example.com"}
    result = merge(None, host, zoho, MAPPING, host_modified_at=EARLIER, zoho_modified_at=LATER)
    [conflict] = result.conflicts
    assert conflict.key == "field:job_title"
    assert conflict.base is None
    assert conflict.reason.startswith("first link, values differ; newest wins")
    assert result.to_host == {"field:job_title": "CTO"}


def test_a_key_missing_from_one_side_is_unchanged_not_blank() -> None:
    # A partial Zoho record (say, from a notification) must not blank host fields.
    result = merge(
        BASE,
        {**BASE, "field:phone": "222"},
        {"field:job_title": "CTO"},
        MAPPING,
        host_modified_at=EARLIER,
        zoho_modified_at=LATER,
    )
    assert result.to_host == {"field:job_title": "CTO"}
    assert result.to_zoho == {"field:phone": "222"}


def test_a_newly_mapped_key_is_merged_like_a_first_link() -> None:
    base = {key: value for key, value in BASE.items() if key != "field:job_title"}
    result = merge(
        base,
        {**base, "field:job_title": None},
        {**base, "field:job_title": "CTO"},
        MAPPING,
        host_modified_at=LATER,
        zoho_modified_at=EARLIER,
    )
    assert result.to_host == {"field:job_title": "CTO"}
    assert result.conflicts == []


# --- groups and subscription -------------------------------------------------------------------


def test_group_membership_merges_like_any_two_way_field() -> None:
    result = run({"group:newsletter": False}, {"field:phone": "9"})
    assert result.to_zoho == {"group:newsletter": False}
    assert result.to_host == {"field:phone": "9"}


def test_an_opt_out_in_the_host_reaches_zoho() -> None:
    result = run({"system:subscription": False}, {})
    assert result.to_zoho == {"system:subscription": False}


def test_an_opt_out_in_zoho_reaches_the_host() -> None:
    result = run({}, {"system:subscription": False})
    assert result.to_host == {"system:subscription": False}


def test_zoho_never_re_subscribes_a_contact_who_opted_out() -> None:
    base = {**BASE, "system:subscription": False}
    result = run({}, {"system:subscription": True}, base=base, host_at=EARLIER, zoho_at=LATER)
    assert "system:subscription" not in result.to_host
    assert result.to_zoho == {"system:subscription": False}  # the opt-out is put back
    [conflict] = result.conflicts
    assert conflict.resolution == "host"
    assert "never undone by a sync" in conflict.reason
    assert result.new_base["system:subscription"] is False


def test_a_contact_re_subscribing_in_the_host_reaches_zoho() -> None:
    base = {**BASE, "system:subscription": False}
    result = run({"system:subscription": True}, {}, base=base)
    assert result.to_zoho == {"system:subscription": True}
    assert result.conflicts == []


def test_the_opt_out_wins_on_first_link_whatever_the_policy() -> None:
    result = merge(
        None,
        {"system:subscription": True},
        {"system:subscription": False},
        make_mapping(ConflictPolicy.HOST_WINS),
        host_modified_at=LATER,
        zoho_modified_at=EARLIER,
    )
    assert result.to_host == {"system:subscription": False}
    assert result.conflicts[0].resolution == "zoho"


def test_the_opt_out_survives_a_conflicting_zoho_re_subscription_after_link() -> None:
    # Base unknown: the host opted out while Zoho shows subscribed.
    result = merge(
        None,
        {"system:subscription": False},
        {"system:subscription": True},
        MAPPING,
        host_modified_at=EARLIER,
        zoho_modified_at=LATER,
    )
    assert result.to_zoho == {"system:subscription": False}
    assert result.to_host == {}


# --- no loops, no flip-flops ---------------------------------------------------------------------


def apply(result: MergeResult, host: dict[str, Any], zoho: dict[str, Any]) -> tuple[dict, dict]:
    return {**host, **result.to_host}, {**zoho, **result.to_zoho}


@pytest.mark.parametrize(
    ("host_changes", "zoho_changes"),
    [
        ({"field:phone": "222"}, {"field:job_title": "CTO"}),
        ({"field:phone": "222"}, {"field:phone": "333"}),
        ({"field:city": "Perth"}, {"field:country": "NZ", "field:city": "Hobart"}),
        ({"system:subscription": False}, {"group:newsletter": False}),
        ({}, {"system:subscription": False, "field:email": "x@y.io"}),
    ],
)
def test_merging_again_after_the_writes_changes_nothing(
    host_changes: dict[str, Any], zoho_changes: dict[str, Any]
) -> None:
    host, zoho = {**BASE, **host_changes}, {**BASE, **zoho_changes}
    first = merge(BASE, host, zoho, MAPPING, host_modified_at=EARLIER, zoho_modified_at=LATER)
    host, zoho = apply(first, host, zoho)
    second = merge(
        first.new_base, host, zoho, MAPPING, host_modified_at=LATER, zoho_modified_at=LATER
    )
    assert (second.to_zoho, second.to_host, second.conflicts) == ({}, {}, [])


def test_truncated_text_does_not_come_back_as_a_zoho_edit() -> None:
    mapping = build_mapping("Leads", fields=[FieldMapping("street", "Street")])
    long_street = "s" * 300
    first = merge(
        {"field:street": None},
        {"field:street": long_street},
        {"field:street": None},
        mapping,
        host_modified_at=LATER,
        zoho_modified_at=EARLIER,
    )
    assert first.to_zoho == {"field:street": long_street}
    zoho_after_push = {"field:street": long_street[:250]}  # what Zoho keeps
    second = merge(
        first.new_base,
        {"field:street": long_street},
        zoho_after_push,
        mapping,
        host_modified_at=LATER,
        zoho_modified_at=LATER,
    )
    assert (second.to_zoho, second.to_host) == ({}, {})


# --- diff ---------------------------------------------------------------------------------------


def test_diff_lists_real_changes_only() -> None:
    after = {**BASE, "field:phone": "222", "field:email": "ADA@example.com", "field:extra": "x"}
    assert diff(BASE, after, MAPPING) == {
        "field:phone": ("111", "222"),
        "field:extra": (None, "x"),
    }
