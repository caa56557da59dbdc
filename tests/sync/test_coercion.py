"""Values crossing between the host's Python types and Zoho's wire format, both ways."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from flask_zoho_sync.sync import CoercionError, HostField, ZohoField, to_host_value, to_zoho_value
from flask_zoho_sync.zoho.timefmt import UTC
from tests.sync.conftest import LEADS_METADATA, SYDNEY, zoho_meta

Z = {meta["api_name"]: ZohoField.from_metadata(meta) for meta in LEADS_METADATA}

TEXT = HostField("first_name", "text")
EMAIL = HostField("email", "email")
PHONE = HostField("phone", "phone")
URL = HostField("website", "url")
INTEGER = HostField("visits", "integer")
DECIMAL = HostField("score", "decimal")
BOOLEAN = HostField("vip", "boolean")
DATE = HostField("member_since", "date")
DATETIME = HostField("last_visit", "datetime")
AWARE_DATETIME = HostField("last_visit", "datetime", datetime_aware=True)
CHOICE = HostField("tier", "choice", choices=("Gold", "Silver"))
MULTI = HostField("interests", "multichoice", choices=("Golf", "Tennis", "Chess"))


def out(value: Any, host: HostField, zoho: str, warnings: list[str] | None = None) -> Any:
    return to_zoho_value(value, host, Z[zoho], SYDNEY, warnings=warnings)


def back(value: Any, zoho: str, host: HostField, warnings: list[str] | None = None) -> Any:
    return to_host_value(value, Z[zoho], host, SYDNEY, warnings=warnings)


# --- text family ----------------------------------------------------------------------------


def test_text_is_trimmed_both_ways() -> None:
    assert out("  Ada \n", TEXT, "First_Name") == "Ada"
    assert back(" Ada ", "First_Name", TEXT) == "Ada"


def test_blank_text_is_sent_as_null_and_null_reads_as_none() -> None:
    assert out("   ", TEXT, "First_Name") is None
    assert out(None, TEXT, "First_Name") is None
    assert back(None, "First_Name", TEXT) is None
    assert back("", "First_Name", TEXT) is None


def test_over_long_text_is_cut_to_the_zoho_length_with_a_warning() -> None:
    warnings: list[str] = []
    sent = out("x" * 50, TEXT, "First_Name", warnings)
    assert sent == "x" * 40
    assert warnings == ["First_Name: value cut from 50 to 40 characters to fit Zoho"]


def test_over_long_zoho_text_is_cut_to_the_host_length_with_a_warning() -> None:
    warnings: list[str] = []
    short = HostField("first_name", "text", max_length=5)
    assert back("Alexandra", "First_Name", short, warnings) == "Alexa"
    assert warnings and "cut from 9 to 5" in warnings[0]


def test_email_keeps_its_case_and_is_checked() -> None:
    assert out(" Ada@Example.COM ", EMAIL, "Email") == "Ada@Example.COM"
    assert back("ada@example.com", "Email", EMAIL) == "ada@example.com"
    with pytest.raises(CoercionError, match="not an email address"):
        out("ada at example", EMAIL, "Email")


def test_a_phone_over_30_characters_is_refused_not_cut() -> None:
    assert out("+61 2 9999 0000", PHONE, "Phone") == "+61 2 9999 0000"
    with pytest.raises(CoercionError, match="30 characters"):
        out("1" * 31, PHONE, "Phone")


def test_url_round_trips() -> None:
    assert out("https://example.com/a", URL, "Website") == "https://example.com/a"
    assert back("https://example.com/a", "Website", URL) == "https://example.com/a"


def test_a_picklist_value_must_be_one_of_zohos() -> None:
    assert out("Gold", CHOICE, "Tier") == "Gold"
    with pytest.raises(CoercionError, match="picklist"):
        out("Bronze", CHOICE, "Tier")


def test_zohos_none_placeholder_reads_as_blank() -> None:
    assert back("-None-", "Tier", CHOICE) is None


def test_a_zoho_picklist_value_outside_the_host_choices_is_refused() -> None:
    with pytest.raises(CoercionError, match="not one of the host's choices"):
        back("Platinum", "Tier", CHOICE)


# --- numbers --------------------------------------------------------------------------------


def test_integers_cross_both_ways() -> None:
    assert out(42, INTEGER, "Visits") == 42
    assert out("42", INTEGER, "Visits") == 42
    assert back(42, "Visits", INTEGER) == 42


def test_a_host_integer_reads_a_whole_zoho_double() -> None:
    assert back(3.0, "Score", INTEGER) == 3


def test_a_fractional_zoho_double_cannot_become_a_host_integer() -> None:
    with pytest.raises(CoercionError, match="fraction"):
        back(3.5, "Score", INTEGER)


def test_an_integer_beyond_nine_digits_is_refused_for_a_zoho_number() -> None:
    with pytest.raises(CoercionError, match="9 digits"):
        out(1_234_567_890, INTEGER, "Visits")


def test_a_long_integer_travels_as_a_string_when_zoho_says_so() -> None:
    field = ZohoField.from_metadata(zoho_meta("Ref", "bigint", 18, json_type="string"))
    assert to_zoho_value(12345678901234, INTEGER, field, SYDNEY) == "12345678901234"
    assert to_host_value("12345678901234", field, INTEGER, SYDNEY) == 12345678901234


@pytest.mark.parametrize("value", ["forty", True, [1]])
def test_a_non_number_for_an_integer_is_a_coercion_error(value: Any) -> None:
    with pytest.raises(CoercionError) as caught:
        out(value, INTEGER, "Visits")
    assert caught.value.field == "visits"
    assert caught.value.value == value


def test_decimals_are_sent_as_floats_rounded_to_zohos_decimal_places() -> None:
    assert out(Decimal("12.345"), DECIMAL, "Score") == 12.35
    assert out(Decimal("12.344"), DECIMAL, "Annual_Revenue") == 12.34


def test_zoho_doubles_become_host_decimals_without_binary_noise() -> None:
    value = back(0.1 + 0.2, "Score", DECIMAL)
    assert value == Decimal("0.30")
    assert isinstance(value, Decimal)


def test_a_non_finite_decimal_is_refused() -> None:
    with pytest.raises(CoercionError, match="finite"):
        out(Decimal("NaN"), DECIMAL, "Score")


# --- booleans -------------------------------------------------------------------------------


def test_booleans_cross_both_ways_and_a_null_checkbox_is_false() -> None:
    assert out(True, BOOLEAN, "Newsletter") is True
    assert out(None, BOOLEAN, "Newsletter") is False
    assert back(False, "Newsletter", BOOLEAN) is False
    assert back(None, "Newsletter", BOOLEAN) is False


def test_a_non_boolean_for_a_checkbox_is_refused() -> None:
    with pytest.raises(CoercionError, match="yes or no"):
        out("maybe", BOOLEAN, "Newsletter")


# --- dates and times ------------------------------------------------------------------------


def test_dates_use_zohos_yyyy_mm_dd() -> None:
    assert out(date(2026, 4, 5), DATE, "Member_Since") == "2026-04-05"
    assert back("2026-04-05", "Member_Since", DATE) == date(2026, 4, 5)


def test_an_impossible_date_is_a_coercion_error() -> None:
    with pytest.raises(CoercionError, match="yyyy-MM-dd"):
        back("2026-02-30", "Member_Since", DATE)
    with pytest.raises(CoercionError):
        out("next tuesday", DATE, "Member_Since")


def test_a_naive_host_datetime_is_read_in_the_configured_zone() -> None:
    # 10:00 in Sydney in January is summer time (+11:00).
    assert out(datetime(2026, 1, 15, 10, 0), DATETIME, "Last_Visit") == "2026-01-15T10:00:00+11:00"


def test_zoho_datetimes_reach_the_host_naive_in_the_configured_zone() -> None:
    # Zoho answers in the API user's zone (reference §8); any offset is the same instant.
    value = back("2026-01-14T15:30:00-08:00", "Last_Visit", DATETIME)
    assert value == datetime(2026, 1, 15, 10, 30)
    assert value.tzinfo is None


def test_an_aware_host_receives_aware_utc() -> None:
    value = back("2026-01-15T10:30:00+11:00", "Last_Visit", AWARE_DATETIME)
    assert value == datetime(2026, 1, 14, 23, 30, tzinfo=UTC)
    assert value.utcoffset() == timedelta(0)


def test_an_aware_host_datetime_is_sent_as_its_instant() -> None:
    moment = datetime(2026, 1, 14, 23, 30, 15, 999, tzinfo=timezone.utc)
    assert out(moment, AWARE_DATETIME, "Last_Visit") == "2026-01-15T10:30:15+11:00"


def test_the_offset_follows_daylight_saving_across_the_april_change() -> None:
    # Sydney leaves daylight saving at 03:00 on 2026-04-05 (back to +10:00).
    before = out(datetime(2026, 4, 4, 12, 0), DATETIME, "Last_Visit")
    after = out(datetime(2026, 4, 6, 12, 0), DATETIME, "Last_Visit")
    assert (before, after) == ("2026-04-04T12:00:00+11:00", "2026-04-06T12:00:00+10:00")


def test_an_ambiguous_time_at_the_april_change_is_its_first_occurrence() -> None:
    # 02:30 happens twice on 2026-04-05; the first one is still daylight time.
    assert out(datetime(2026, 4, 5, 2, 30), DATETIME, "Last_Visit") == "2026-04-05T02:30:00+11:00"


def test_a_time_skipped_by_the_october_change_lands_an_hour_later() -> None:
    # 02:30 never happens on 2026-10-04 (clocks jump 02:00 -> 03:00); it is read with the
    # offset from before the change, which is the instant shown as 03:30 afterwards.
    sent = out(datetime(2026, 10, 4, 2, 30), DATETIME, "Last_Visit")
    assert sent == "2026-10-04T03:30:00+11:00"
    assert back(sent, "Last_Visit", DATETIME) == datetime(2026, 10, 4, 3, 30)


def test_naive_round_trip_keeps_the_wall_clock_on_both_sides_of_the_october_change() -> None:
    for moment in (datetime(2026, 10, 3, 9, 15), datetime(2026, 10, 5, 9, 15)):
        assert back(out(moment, DATETIME, "Last_Visit"), "Last_Visit", DATETIME) == moment


def test_a_zoho_datetime_without_an_offset_is_refused() -> None:
    with pytest.raises(CoercionError, match="no UTC offset"):
        back("2026-01-15T10:00:00", "Last_Visit", DATETIME)


def test_a_date_where_a_datetime_belongs_is_refused() -> None:
    with pytest.raises(CoercionError, match="date and time"):
        out(date(2026, 1, 15), DATETIME, "Last_Visit")


# --- multi-select ---------------------------------------------------------------------------


def test_multi_select_is_a_list_whose_order_does_not_matter() -> None:
    assert out(["Tennis", "Golf", "Golf"], MULTI, "Interests") == ["Golf", "Tennis"]
    assert back(["Tennis", "Chess"], "Interests", MULTI) == ["Chess", "Tennis"]


def test_an_empty_multi_select_is_sent_as_an_empty_list_and_read_as_one() -> None:
    assert out([], MULTI, "Interests") == []
    assert back(None, "Interests", MULTI) == []


def test_a_multi_select_value_zoho_does_not_offer_is_refused() -> None:
    with pytest.raises(CoercionError, match="'Polo'"):
        out(["Golf", "Polo"], MULTI, "Interests")


# --- lookups and errors -----------------------------------------------------------------------


def test_a_lookup_is_read_as_its_name_or_its_id() -> None:
    account = ZohoField.from_metadata(zoho_meta("Account_Name", "lookup"))
    linked = {"name": "Acme Pty Ltd", "id": "4150868000000224005"}
    assert to_host_value(linked, account, TEXT, SYDNEY) == "Acme Pty Ltd"
    assert to_host_value(linked, account, TEXT, SYDNEY, lookup_part="id") == "4150868000000224005"
    assert to_host_value(None, account, TEXT, SYDNEY) is None


def test_a_lookup_is_never_written() -> None:
    account = ZohoField.from_metadata(zoho_meta("Account_Name", "lookup"))
    with pytest.raises(CoercionError, match="read-only"):
        to_zoho_value("Acme", TEXT, account, SYDNEY)


def test_a_coercion_error_names_the_field_the_value_and_the_reason() -> None:
    with pytest.raises(CoercionError) as caught:
        back({"unexpected": "object"}, "First_Name", TEXT)
    message = str(caught.value)
    assert message.startswith("First_Name: cannot use {'unexpected': 'object'}: ")
    assert "object" in caught.value.reason
