"""Time zones: only places are offered or accepted, and an unset zone reads as what happens.

``zoneinfo.available_timezones()`` also lists the database's helper files ("Factory",
"localtime", "posixrules", the posix/ and right/ copies) and backward-compatible aliases
("US/Eastern"); an admin who picks one of those gets a zone that is not theirs, or none.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flask_zoho_sync.config import canonical_time_zones, validate_time_zone
from flask_zoho_sync.errors import ConfigurationError
from tests.conftest import TEST_REDIS_URL
from tests.hostapp import make_host_app
from tests.web.conftest import Admin

ROOT = Path(__file__).resolve().parents[2]
NOT_PLACES = ("Factory", "localtime", "posixrules", "posix/Europe/Paris", "right/UTC")
ALIASES = {"US/Eastern": "America/New_York", "Asia/Calcutta": "Asia/Kolkata"}
_OPTION = re.compile(r'<option value="([^"]+)"')


def test_only_canonical_places_and_utc_are_offered() -> None:
    zones = canonical_time_zones()
    assert {"UTC", "Australia/Sydney", "America/New_York", "Asia/Kolkata"} <= zones
    assert not zones & {*NOT_PLACES, *ALIASES}
    assert not any(zone.startswith(("posix/", "right/", "Etc/", "US/")) for zone in zones)
    assert len(zones) > 300, "every populated place of the database is still there"


@pytest.mark.parametrize("name", NOT_PLACES)
def test_a_file_of_the_database_that_is_no_place_is_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="not a known time zone"):
        validate_time_zone(name)


@pytest.mark.parametrize(("alias", "canonical"), ALIASES.items())
def test_an_old_alias_is_refused_with_the_name_to_use(alias: str, canonical: str) -> None:
    with pytest.raises(ConfigurationError, match=f"use '{canonical}'"):
        validate_time_zone(alias)


def test_the_settings_page_offers_no_helper_file_and_no_alias(admin: Admin) -> None:
    offered = set(_OPTION.findall(admin.text("/settings")))
    assert {"Australia/Sydney", "UTC"} <= offered
    assert not offered & {*NOT_PLACES, *ALIASES}
    assert not any(zone.startswith(("posix/", "right/")) for zone in offered)


def test_the_settings_page_refuses_an_alias_and_names_the_zone_to_pick(admin: Admin) -> None:
    form = {"module": "Leads", "conflict_policy": "newest"}
    response = admin.post("/settings", {**form, "time_zone": "US/Eastern"})
    assert response.status_code == 400
    assert "America/New_York" in response.get_data(as_text=True)
    assert admin.settings().module is None, "nothing is saved from a refused form"
    response = admin.post("/settings", {**form, "time_zone": "Factory"})
    assert response.status_code == 400
    assert "not a known time zone" in response.get_data(as_text=True)


def test_a_zone_saved_under_an_old_alias_is_shown_under_its_canonical_name(admin: Admin) -> None:
    admin.update_settings(time_zone="Asia/Calcutta")
    text = admin.text("/settings")
    assert '<option value="Asia/Kolkata" selected>' in text
    assert "Asia/Calcutta" not in text


HOST_MODULE = """
import os
from tests.hostapp import make_host_app

app = make_host_app(
    os.environ["DATABASE_URL"], fresh_tables=False, ZOHO_SYNC_REDIS_URL=os.environ["REDIS"]
).app
"""


def test_the_cli_refuses_non_places_and_never_prints_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'zones.sqlite3'}"
    built = make_host_app(url)  # tables, but no settings row yet
    (tmp_path / "zonehost.py").write_text(HOST_MODULE)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZOHO_SYNC_")}
    env.update(
        DATABASE_URL=url,
        REDIS=TEST_REDIS_URL,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]),
    )

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "zonehost", "zoho-sync", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    status = flask("status")
    assert status.returncode == 0, status.stderr
    assert "time zone: not set (UTC is used)" in status.stdout
    assert "None" not in status.stdout
    for name in ("localtime", "Factory", "posixrules"):
        refused = flask("settings", "--timezone", name)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "not a known time zone" in refused.stderr and "Traceback" not in refused.stderr
    refused = flask("settings", "--timezone", "US/Eastern")
    assert refused.returncode == 1
    assert "use 'America/New_York'" in refused.stderr
    chosen = flask("settings", "--timezone", "Australia/Sydney")
    assert chosen.returncode == 0, chosen.stderr
    assert "time zone: Australia/Sydney" in chosen.stdout
    shown = flask("status")
    assert "time zone: Australia/Sydney" in shown.stdout and "None" not in shown.stdout
    with built.app.app_context():
        built.db.engine.dispose()
