"""Who may use the admin pages, and CSRF on every POST."""

from __future__ import annotations

import json
import re

import pytest

from tests.web.conftest import PREFIX, Admin

PAGES = ["/", "/settings", "/mapping"]
ACTIONS = [
    "/connect",
    "/disconnect",
    "/settings",
    "/mapping/field/add",
    "/mapping/defaults",
    "/mapping/refresh",
]


@pytest.mark.parametrize("path", PAGES + [f"POST {a}" for a in ACTIONS])
def test_without_an_admin_check_every_page_refuses_and_says_how_to_configure_it(
    make_admin, path: str
) -> None:
    admin: Admin = make_admin(admin_check=None)
    if path.startswith("POST "):
        response = admin.client.post(PREFIX + path.removeprefix("POST "))
    else:
        response = admin.get(path)
    assert response.status_code == 403
    text = response.get_data(as_text=True)
    assert "admin_check" in text
    assert "ZohoSync(app, db=db" in text


@pytest.mark.parametrize("path", PAGES)
def test_a_non_admin_is_refused_every_page(make_admin, path: str) -> None:
    admin = make_admin(admin_check=lambda: False)
    response = admin.get(path)
    assert response.status_code == 403
    assert "administrators" in response.get_data(as_text=True)


def test_an_admin_check_must_say_true_not_just_something_truthy(make_admin) -> None:
    admin = make_admin(admin_check=lambda: "yes")
    assert admin.get("/").status_code == 403


@pytest.mark.parametrize("path", ACTIONS)
def test_a_non_admin_cannot_post_actions_even_with_a_valid_token(make_admin, path: str) -> None:
    allowed = {"value": True}
    admin = make_admin(admin_check=lambda: allowed["value"])
    token = admin.csrf_token()
    allowed["value"] = False
    response = admin.client.post(PREFIX + path, data={"csrf_token": token, "module": "Leads"})
    assert response.status_code == 403


def test_a_post_without_csrf_token_is_refused_and_changes_nothing(admin: Admin) -> None:
    response = admin.client.post(
        f"{PREFIX}/settings",
        data={"module": "Contacts", "time_zone": "Europe/Paris", "conflict_policy": "zoho_wins"},
    )
    assert response.status_code == 400
    assert "CSRF token" in response.get_data(as_text=True)
    settings = admin.settings()
    assert settings.module is None
    assert settings.time_zone == "UTC"


def test_a_post_with_a_wrong_token_is_refused(admin: Admin) -> None:
    admin.csrf_token()
    response = admin.client.post(
        f"{PREFIX}/settings",
        data={"csrf_token": "forged", "module": "Leads", "time_zone": "UTC"},
        headers={"X-CSRFToken": "forged"},
    )
    assert response.status_code == 400
    assert admin.settings().module is None


def test_a_token_from_another_session_is_refused(make_admin) -> None:
    admin = make_admin()
    stolen = admin.csrf_token()
    other_browser = admin.host.app.test_client()
    response = other_browser.post(
        f"{PREFIX}/settings",
        data={"csrf_token": stolen, "module": "Leads", "time_zone": "UTC"},
    )
    assert response.status_code == 400


def test_a_post_with_the_token_in_the_htmx_header_is_accepted(admin: Admin) -> None:
    response = admin.htmx_post(
        "/settings",
        {"module": "Leads", "time_zone": "Europe/Paris", "conflict_policy": "newest"},
    )
    assert response.status_code == 200
    assert admin.settings().module == "Leads"


def test_pages_put_the_token_on_body_for_htmx_and_in_every_form(admin: Admin) -> None:
    text = admin.text("/")
    token = admin.csrf_token()
    assert f'hx-headers="{{&#34;X-CSRFToken&#34;: &#34;{token}&#34;}}"' in text
    assert f'name="csrf_token" value="{token}"' in text


def test_htmx_refusals_are_shown_in_the_pages_alert_box(admin: Admin) -> None:
    """htmx 2 drops 4xx answers unless told otherwise; the head tells it where they go."""
    head = admin.text("/")
    config = json.loads(re.search(r"name=\"htmx-config\" content='([^']+)'", head).group(1))
    errors = next(rule for rule in config["responseHandling"] if rule["code"] == "[45]..")
    assert errors["swap"] is True and errors["target"] == "#zs-alert"
    assert 'id="zs-alert"' in head
    refused = admin.client.post(f"{PREFIX}/settings", headers={"HX-Request": "true"})
    assert refused.status_code == 400
    assert 'id="zs-error-message"' in refused.get_data(as_text=True)


def test_static_files_are_served_under_the_prefix_without_a_cdn(make_admin) -> None:
    admin = make_admin(admin_check=lambda: False)
    text = make_admin().text("/")
    assert "/admin/zoho/static/zoho_sync/htmx-2.0.11.min.js" in text
    assert "//unpkg" not in text and "cdn" not in text.lower()
    for name in ("htmx-2.0.11.min.js", "admin.css"):
        response = admin.get(f"/static/zoho_sync/{name}")
        assert response.status_code == 200
        response.close()


def test_the_prefix_follows_the_configuration(make_admin) -> None:
    admin = make_admin(ZOHO_SYNC_URL_PREFIX="/staff/crm")
    assert admin.client.get("/staff/crm/").status_code == 200
    assert admin.client.get("/admin/zoho/").status_code == 404


def test_without_a_secret_key_the_pages_explain_what_to_set(make_admin) -> None:
    admin = make_admin(SECRET_KEY=None)
    response = admin.get("/")
    assert response.status_code == 500
    assert "SECRET_KEY" in response.get_data(as_text=True)


def test_the_host_layout_can_be_overridden(make_admin, tmp_path) -> None:
    admin = make_admin()
    folder = tmp_path / "zoho_sync"
    folder.mkdir()
    (folder / "layout.html").write_text(
        '<html><head>{% include "zoho_sync/_head.html" %}</head>'
        "<body class=host-chrome>HOST LAYOUT {% block content %}{% endblock %}</body></html>"
    )
    from jinja2 import ChoiceLoader, FileSystemLoader

    app = admin.host.app
    app.jinja_loader = ChoiceLoader([FileSystemLoader(str(tmp_path)), app.jinja_loader])
    app.jinja_env.loader = app.create_global_jinja_loader()
    text = admin.text("/")
    assert "HOST LAYOUT" in text and "host-chrome" in text
    assert "Overview" in text and "admin.css" in text


def test_a_host_running_flask_wtf_keeps_one_csrf_token(make_admin) -> None:
    pytest.importorskip("flask_wtf")
    from flask_wtf.csrf import CSRFProtect

    admin = make_admin()
    CSRFProtect(admin.host.app)
    token = admin.csrf_token()
    refused = admin.client.post(f"{PREFIX}/settings", data={"module": "Leads"})
    assert refused.status_code == 400
    accepted = admin.client.post(
        f"{PREFIX}/settings",
        data={"module": "Leads", "time_zone": "UTC", "conflict_policy": "newest"},
        headers={"X-CSRFToken": token},
    )
    assert accepted.status_code == 302


def test_a_host_that_exempts_the_blueprint_from_flask_wtf_is_still_protected(make_admin) -> None:
    pytest.importorskip("flask_wtf")
    from flask_wtf.csrf import CSRFProtect

    admin = make_admin()
    CSRFProtect(admin.host.app).exempt("zoho_sync")
    refused = admin.client.post(f"{PREFIX}/settings", data={"module": "Leads"})
    assert refused.status_code == 400
    assert admin.settings().module is None


def test_saving_settings_tells_change_capture_to_reread_them(admin: Admin) -> None:
    calls: list[str] = []
    admin.state.preferences_changed = lambda: calls.append("changed")  # type: ignore[attr-defined]
    admin.post("/settings", {"module": "Leads", "time_zone": "UTC", "conflict_policy": "newest"})
    assert calls == ["changed"]
