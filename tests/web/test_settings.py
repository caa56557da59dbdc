"""The settings page: module, time zone, automatic sync, conflict policy."""

from __future__ import annotations

import sqlalchemy as sa

from flask_zoho_sync.models import Link
from tests.web.conftest import Admin

VALID = {"module": "Leads", "time_zone": "Europe/Berlin", "conflict_policy": "newest"}


def _links(admin: Admin) -> dict[str, int]:
    with admin.host.app.app_context():
        rows = admin.state.db.session.execute(
            sa.select(Link.module, sa.func.count()).group_by(Link.module)
        ).all()
    return {module: count for module, count in rows}


def _add_links(admin: Admin, module: str, count: int) -> None:
    with admin.host.app.app_context():
        session = admin.state.db.session
        for number in range(count):
            session.add(Link(module=module, contact_id=str(number), zoho_id=f"9{number}"))
        session.commit()


def test_the_settings_page_renders_when_not_connected_and_offers_to_connect(
    admin: Admin,
) -> None:
    text = admin.text("/settings")
    assert "Zoho CRM is not connected" in text
    assert 'value="Leads"' in text and 'value="Contacts"' in text
    assert '<option value="Australia/Sydney">' in text


def test_the_time_zone_is_suggested_from_the_zoho_org_while_still_the_default(
    admin: Admin,
) -> None:
    admin.store_connection(org={"time_zone": "Australia/Sydney"})
    text = admin.text("/settings")
    assert '<option value="Australia/Sydney" selected>' in text
    assert "Suggested from your Zoho organisation" in text
    assert admin.settings().time_zone == "UTC"  # only suggested, not saved


def test_a_chosen_time_zone_is_kept_and_a_difference_from_the_org_is_warned_about(
    admin: Admin,
) -> None:
    admin.store_connection(org={"time_zone": "Australia/Sydney"})
    response = admin.post("/settings", {**VALID, "time_zone": "Europe/Berlin"})
    assert response.status_code == 302
    text = admin.text("/settings")
    assert '<option value="Europe/Berlin" selected>' in text
    assert "Your Zoho organisation uses <strong>Australia/Sydney</strong>" in text
    assert "read as Europe/Berlin time" in text


def test_saving_valid_settings_stores_them(admin: Admin) -> None:
    response = admin.post(
        "/settings",
        {
            "module": "Contacts",
            "time_zone": "Asia/Tokyo",
            "auto_sync": "on",
            "conflict_policy": "zoho_wins",
        },
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "Settings saved." in response.get_data(as_text=True)
    stored = admin.settings()
    assert (stored.module, stored.time_zone, stored.auto_sync, stored.conflict_policy) == (
        "Contacts",
        "Asia/Tokyo",
        True,
        "zoho_wins",
    )


def test_an_unticked_auto_sync_box_turns_automatic_sync_off(admin: Admin) -> None:
    admin.update_settings(auto_sync=True, module="Leads")
    admin.post("/settings", VALID)
    assert admin.settings().auto_sync is False


def test_an_unknown_time_zone_is_refused_and_nothing_is_saved(admin: Admin) -> None:
    response = admin.post("/settings", {**VALID, "time_zone": "Mars/Olympus_Mons"})
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Nothing was saved" in text
    assert "&#39;Mars/Olympus_Mons&#39; is not a known time zone" in text
    stored = admin.settings()
    assert (stored.module, stored.time_zone) == (None, "UTC")


def test_an_unknown_module_or_policy_is_refused_and_nothing_is_saved(admin: Admin) -> None:
    response = admin.post(
        "/settings", {"module": "Deals", "time_zone": "UTC", "conflict_policy": "loudest"}
    )
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Choose Leads or Contacts." in text
    assert "Choose who wins" in text
    assert admin.settings().module is None


def test_switching_module_with_links_asks_for_confirmation_first(admin: Admin) -> None:
    admin.update_settings(module="Leads")
    _add_links(admin, "Leads", 3)
    response = admin.post("/settings", {**VALID, "module": "Contacts"})
    assert response.status_code == 409
    text = response.get_data(as_text=True)
    assert "3 links to Leads records will be forgotten" in text
    assert "matched again by email on the next sync" in text
    assert admin.settings().module == "Leads"
    assert _links(admin) == {"Leads": 3}


def test_a_confirmed_module_switch_forgets_the_old_links_and_starts_afresh(
    admin: Admin,
) -> None:
    from datetime import datetime, timezone

    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    admin.update_settings(
        module="Leads", pull_watermark=moment, last_pull_at=moment, last_push_at=moment
    )
    _add_links(admin, "Leads", 2)
    response = admin.post(
        "/settings",
        {**VALID, "module": "Contacts", "confirm_relink": "yes"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "2 links were forgotten" in response.get_data(as_text=True)
    stored = admin.settings()
    assert stored.module == "Contacts"
    assert (stored.pull_watermark, stored.last_pull_at, stored.last_push_at) == (None,) * 3
    assert _links(admin) == {}


def test_keeping_the_module_keeps_its_links(admin: Admin) -> None:
    admin.update_settings(module="Leads")
    _add_links(admin, "Leads", 2)
    assert admin.post("/settings", VALID).status_code == 302
    assert _links(admin) == {"Leads": 2}


def test_with_htmx_the_form_is_swapped_in_place_with_its_message(admin: Admin) -> None:
    saved = admin.htmx_post("/settings", VALID)
    assert saved.status_code == 200
    text = saved.get_data(as_text=True)
    assert text.lstrip().startswith("<form") or 'id="zs-settings"' in text
    assert "<html" not in text and "Settings saved." in text
    refused = admin.htmx_post("/settings", {**VALID, "time_zone": "Nowhere"})
    assert refused.status_code == 200
    assert "Nothing was saved" in refused.get_data(as_text=True)
    assert admin.settings().time_zone == "Europe/Berlin"


def test_a_module_switch_during_a_sync_is_refused_and_keeps_the_form(
    admin: Admin, monkeypatch
) -> None:
    from flask_zoho_sync import jobs

    monkeypatch.setattr(jobs, "SWITCH_WAIT_SECONDS", 0.2)
    admin.update_settings(module="Leads")
    _add_links(admin, "Leads", 2)
    with admin.host.app.app_context(), jobs.run_lock(admin.state):
        response = admin.post(
            "/settings",
            {**VALID, "module": "Contacts", "time_zone": "Asia/Tokyo", "confirm_relink": "yes"},
        )
    assert response.status_code == 409
    text = response.get_data(as_text=True)
    assert "A sync is running; try again when it finishes" in text
    assert '<option value="Asia/Tokyo" selected' in text
    stored = admin.settings()
    assert (stored.module, stored.time_zone) == ("Leads", "UTC")
    assert _links(admin) == {"Leads": 2}
    # Once the run is over the same form goes through.
    again = admin.post(
        "/settings",
        {**VALID, "module": "Contacts", "confirm_relink": "yes"},
        follow_redirects=True,
    )
    assert again.status_code == 200
    assert admin.settings().module == "Contacts"
