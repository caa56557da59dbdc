"""The revert's decisions on their own (``sync.revert.plan_revert``): no database, no Zoho."""

from __future__ import annotations

from typing import Any

from flask_zoho_sync.sync.mapping import Mapping
from flask_zoho_sync.sync.revert import (
    UNDO_KEY,
    CurrentValues,
    HistoryEntry,
    deleted_emails,
    email_key,
    plan_revert,
    undo_values,
)


def entry(
    action: str,
    direction: str = "to_host",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    *,
    undo: bool = True,
) -> HistoryEntry:
    changes = {UNDO_KEY: undo_values(before, after)} if undo else {}
    return HistoryEntry(1, direction, action, "7", "z7", changes)


def test_a_field_is_put_back_only_where_it_still_holds_what_the_run_wrote(
    leads_mapping: Mapping,
) -> None:
    wrote = entry(
        "update",
        before={"field:first_name": "Ann", "field:phone": "111"},
        after={"field:first_name": "Annie", "field:phone": "222"},
    )
    now = CurrentValues(host={"7": {"field:first_name": " Annie ", "field:phone": "333"}}, zoho={})
    [record] = plan_revert([wrote], now, leads_mapping).records
    # Stripped text is the same value to the sync, so the first name still holds the run's.
    assert record.values == {"field:first_name": "Ann"}
    assert [(item.key, item.wrote, item.current) for item in record.skipped] == [
        ("field:phone", "222", "333")
    ]


def test_a_record_changed_back_by_hand_since_needs_no_write(leads_mapping: Mapping) -> None:
    wrote = entry("update", "to_zoho", {"field:phone": "111"}, {"field:phone": "222"})
    now = CurrentValues(host={}, zoho={"z7": {"field:phone": "111"}})
    [record] = plan_revert([wrote], now, leads_mapping).records
    assert (record.action, record.reason) == (
        "skip",
        "every field the run wrote was changed again since",
    )


def test_rows_without_before_values_and_creates_are_counted_not_reverted(
    leads_mapping: Mapping,
) -> None:
    plan = plan_revert(
        [
            entry("update", undo=False),
            entry("create", before=None, after={"field:phone": "1"}),
            entry("error", undo=False),
        ],
        CurrentValues(host={}, zoho={}),
        leads_mapping,
    )
    assert plan.records == []
    assert plan.not_revertible == {"to_host.update": 1, "to_host.create": 1}


def test_a_deleted_contact_whose_email_is_back_is_not_made_twice(leads_mapping: Mapping) -> None:
    key = email_key(leads_mapping)
    assert key is not None
    gone = entry("delete", before={key: "Ann@Example.org", "field:phone": "111"})
    assert deleted_emails([gone], key) == ["ann@example.org"]
    back = CurrentValues(
        host={}, zoho={}, host_emails=frozenset({"ann@example.org"}), email_key=key
    )
    [record] = plan_revert([gone], back, leads_mapping).records
    assert record.action == "skip"
    still_gone = CurrentValues(host={}, zoho={}, email_key=key)
    [record] = plan_revert([gone], still_gone, leads_mapping).records
    assert (record.action, record.values["field:phone"]) == ("create", "111")


def test_a_zoho_record_deleted_in_another_module_is_not_re_created(
    leads_mapping: Mapping,
) -> None:
    gone = entry("delete", "to_zoho", before={"field:phone": "111"})
    elsewhere = CurrentValues(host={}, zoho={}, buried=frozenset())
    [record] = plan_revert([gone], elsewhere, leads_mapping).records
    assert record.action == "skip"
    assert "another Zoho module" in (record.reason or "")
    here = CurrentValues(host={}, zoho={}, buried=frozenset({"z7"}))
    [record] = plan_revert([gone], here, leads_mapping).records
    assert record.action == "create"
