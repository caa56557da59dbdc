"""Settings: defaults, and clear refusals of missing or malformed values at start-up."""

from __future__ import annotations

import pytest

from flask_zoho_sync.config import SETTINGS, read_config, validate_time_zone
from flask_zoho_sync.errors import ConfigurationError

REQUIRED = {
    "ZOHO_SYNC_CLIENT_ID": "cid",
    "ZOHO_SYNC_CLIENT_SECRET": "secret",
    "ZOHO_SYNC_ENCRYPTION_KEYS": "k1, k2",
}


def test_defaults_match_the_documented_outside_surface() -> None:
    config = read_config(REQUIRED)
    assert config.accounts_url == "https://accounts.zoho.com"
    assert config.queue == "zoho-sync"
    assert config.push_delay == 600
    assert config.pull_interval == 86400
    assert config.url_prefix == "/admin/zoho"
    assert config.encryption_keys == ("k1", "k2")
    assert config.extra_accounts_servers == ()
    assert config.trigger_workflows is False
    assert config.max_concurrency == 2


def test_missing_required_settings_are_all_named_with_what_to_do() -> None:
    with pytest.raises(ConfigurationError) as error:
        read_config({"ZOHO_SYNC_CLIENT_ID": "cid"})
    message = str(error.value)
    assert "ZOHO_SYNC_CLIENT_SECRET" in message
    assert "ZOHO_SYNC_ENCRYPTION_KEYS" in message
    assert "Fernet.generate_key" in message
    assert "ZOHO_SYNC_CLIENT_ID:" not in message


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("ZOHO_SYNC_PUSH_DELAY", "ten minutes", "whole number"),
        ("ZOHO_SYNC_PULL_INTERVAL", 5, "at least 60"),
        ("ZOHO_SYNC_URL_PREFIX", "admin/zoho", "start with '/'"),
        ("ZOHO_SYNC_TRIGGER_WORKFLOWS", "maybe", "true or false"),
        ("ZOHO_SYNC_MASS_DELETE_SHARE", 3, "between 0.0 and 1.0"),
        ("ZOHO_SYNC_MAX_CONCURRENCY", 0, "between 1 and 25"),
        ("ZOHO_SYNC_MAX_CONCURRENCY", 26, "between 1 and 25"),
        ("ZOHO_SYNC_MAX_CONCURRENCY", "lots", "whole number"),
        ("ZOHO_SYNC_ORG_CONCURRENCY", 0, "between 1 and 25"),
        ("ZOHO_SYNC_ORG_CONCURRENCY", 26, "between 1 and 25"),
        ("ZOHO_SYNC_ORG_CONCURRENCY", "a few", "whole number"),
    ],
)
def test_malformed_values_are_refused_naming_the_key(
    key: str, value: object, fragment: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        read_config({**REQUIRED, key: value})
    assert key in str(error.value)
    assert fragment in str(error.value)


def test_concurrency_accepts_the_range_zoho_editions_allow() -> None:
    assert read_config({**REQUIRED, "ZOHO_SYNC_MAX_CONCURRENCY": "1"}).max_concurrency == 1
    assert read_config({**REQUIRED, "ZOHO_SYNC_MAX_CONCURRENCY": 25}).max_concurrency == 25


def test_org_concurrency_defaults_to_zohos_lowest_limit_unless_one_sync_may_use_more() -> None:
    assert read_config(REQUIRED).org_concurrency == 5
    assert read_config({**REQUIRED, "ZOHO_SYNC_ORG_CONCURRENCY": ""}).org_concurrency == 5
    higher = read_config({**REQUIRED, "ZOHO_SYNC_MAX_CONCURRENCY": 8})
    assert higher.org_concurrency == 8
    assert read_config({**REQUIRED, "ZOHO_SYNC_ORG_CONCURRENCY": "1"}).org_concurrency == 1
    explicit = read_config(
        {**REQUIRED, "ZOHO_SYNC_ORG_CONCURRENCY": " 25 ", "ZOHO_SYNC_MAX_CONCURRENCY": 8}
    )
    assert explicit.org_concurrency == 25


def test_lists_accept_comma_strings_from_the_environment() -> None:
    config = read_config(
        {**REQUIRED, "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS": "http://127.0.0.1:8765, http://x:1"}
    )
    assert config.extra_accounts_servers == ("http://127.0.0.1:8765", "http://x:1")


def test_redis_url_falls_back_to_the_hosts_redis_url() -> None:
    assert read_config({**REQUIRED, "REDIS_URL": "redis://h:1/2"}).redis_url == "redis://h:1/2"
    explicit = read_config(
        {**REQUIRED, "REDIS_URL": "redis://h:1/2", "ZOHO_SYNC_REDIS_URL": "redis://z/3"}
    )
    assert explicit.redis_url == "redis://z/3"


def test_every_setting_is_documented() -> None:
    assert all(setting.help for setting in SETTINGS)
    assert all(setting.key.startswith("ZOHO_SYNC_") for setting in SETTINGS)


def test_time_zone_names_are_checked() -> None:
    assert str(validate_time_zone("Australia/Sydney")) == "Australia/Sydney"
    with pytest.raises(ConfigurationError, match="IANA"):
        validate_time_zone("Mars/Olympus")


def test_a_time_zone_name_too_long_for_a_file_name_is_refused_like_any_unknown_zone() -> None:
    from flask_zoho_sync.config import validate_time_zone

    with pytest.raises(ConfigurationError, match="not a known time zone"):
        validate_time_zone("x" * 5000)


def test_accounts_servers_are_stored_as_their_normalised_origin() -> None:
    config = read_config(
        {
            **REQUIRED,
            "ZOHO_SYNC_ACCOUNTS_URL": " HTTPS://Accounts.Zoho.EU:443/\t",
            "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS": "HTTP://127.0.0.1:8765/ , http://Sandbox:80",
        }
    )
    assert config.accounts_url == "https://accounts.zoho.eu"
    assert config.extra_accounts_servers == ("http://127.0.0.1:8765", "http://sandbox")


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("ZOHO_SYNC_ACCOUNTS_URL", "https://accounts.zoho.eu/../..", "has the path"),
        ("ZOHO_SYNC_ACCOUNTS_URL", "accounts.zoho.eu", "must start with https://"),
        ("ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS", "http://127.0.0.1:038765", "leading zeros"),
        ("ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS", "http://ok:1, http://u@evil:2", "user name"),
    ],
)
def test_a_malformed_accounts_server_setting_is_refused_naming_it(
    key: str, value: str, reason: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        read_config({**REQUIRED, key: value})
    assert key in str(caught.value) and reason in str(caught.value)
