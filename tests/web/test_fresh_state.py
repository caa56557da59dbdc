"""Fresh state without a reload: after Disconnect, a module switch or a finished run, the
panels on screen show the new state (an ``HX-Trigger: zs-changed`` the panels listen for,
or an out-of-band swap), and each message appears once, even in a host layout that shows
Flask's flashed messages itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import sqlalchemy as sa
from jinja2 import ChoiceLoader, DictLoader

from flask_zoho_sync.models import FieldMap, Run
from tests.web.conftest import Admin

LISTENS = 'hx-trigger="zs-changed from:body"'

#: A host layout like the demo's: it shows every flashed message itself.
HOST_LAYOUT = """<!doctype html><html><head>{% include "zoho_sync/_head.html" %}</head>
<body><header>Host</header>
{% for category, message in get_flashed_messages(with_categories=true) %}
<p class="host-flash">{{ message }}</p>{% endfor %}
{% block content %}{% endblock %}</body></html>"""


def in_host_layout(make_admin: Callable[..., Admin]) -> Admin:
    admin = make_admin()
    app = admin.host.app
    app.jinja_loader = ChoiceLoader(  # type: ignore[assignment]
        [DictLoader({"zoho_sync/layout.html": HOST_LAYOUT}), app.jinja_loader]
    )
    return admin


def test_every_message_appears_once_in_a_host_layout_that_shows_flashes(
    make_admin: Callable[..., Admin],
) -> None:
    admin = in_host_layout(make_admin)
    saved = admin.post(
        "/settings",
        {"module": "Leads", "time_zone": "UTC", "conflict_policy": "newest"},
        follow_redirects=True,
    )
    text = saved.get_data(as_text=True)
    assert "<header>Host</header>" in text
    assert text.count("Settings saved.") == 1
    assert "Settings saved." not in admin.text("/settings")


def test_the_panels_that_show_state_listen_for_changes(admin: Admin) -> None:
    overview = admin.text("/")
    assert 'hx-trigger="every 60s, zs-changed from:body"' in overview
    admin.update_settings(module="Leads")
    with admin.host.app.app_context():
        session = admin.state.db.session
        session.add(FieldMap(kind="field", host_key="company", zoho_field="Company"))
        session.commit()
    admin.store_connection()
    connected = admin.text("/")
    disconnect = connected[connected.index('action="/admin/zoho/disconnect"') :]
    assert 'hx-target="#zs-overview"' in disconnect[: disconnect.index(">")]
    sync = admin.text("/sync")
    assert LISTENS in sync and 'hx-get="/admin/zoho/sync"' in sync


def test_a_module_switch_tells_the_panels(admin: Admin) -> None:
    answer = admin.htmx_post(
        "/settings", {"module": "Contacts", "time_zone": "UTC", "conflict_policy": "newest"}
    )
    assert answer.status_code == 200
    assert answer.headers["HX-Trigger"] == "zs-changed"
    assert "Settings saved." in answer.get_data(as_text=True)
    # What a panel fetches on that event shows the new module.
    fragment = admin.client.get(
        "/admin/zoho/", headers={"HX-Request": "true", "HX-Target": "zs-overview"}
    ).get_data(as_text=True)
    assert 'id="zs-overview"' in fragment and "<html" not in fragment
    admin.store_connection()
    fragment = admin.client.get(
        "/admin/zoho/", headers={"HX-Request": "true", "HX-Target": "zs-overview"}
    ).get_data(as_text=True)
    assert "<dt>Module</dt><dd>Contacts</dd>" in fragment


def test_a_finished_run_tells_the_panels_once_it_ends(admin: Admin) -> None:
    with admin.host.app.app_context():
        session = admin.state.db.session
        run = Run(kind="sync", mode="since_last", status="running", counts={})
        session.add(run)
        session.commit()
        run_id = run.id
    running = admin.get("/sync/progress")
    assert running.status_code == 200 and "HX-Trigger" not in running.headers
    with admin.host.app.app_context():
        session = admin.state.db.session
        run = session.get(Run, run_id)
        run.status = "succeeded"
        run.finished_at = datetime.now(timezone.utc)
        run.counts = {"to_zoho.create": 1}
        session.commit()
    ended = admin.get("/sync/progress")
    assert ended.status_code == 286  # htmx stops polling
    assert ended.headers["HX-Trigger"] == "zs-changed"
    assert "1 created" in ended.get_data(as_text=True)


def test_mapping_a_field_takes_the_standard_pairs_offer_away_in_place(
    connected_admin: Admin,
) -> None:
    connected_admin.update_settings(module="Leads")
    connected_admin.post("/mapping/refresh")
    page = connected_admin.text("/mapping")
    assert "Nothing syncs until a field beyond email is mapped" in page
    assert "First name ↔ First Name (First_Name)" in page  # labels, not column names
    answer = connected_admin.htmx_post(
        "/mapping/field/add", {"host_key": "company", "zoho_field": "Company"}
    )
    text = answer.get_data(as_text=True)
    assert '<div id="zs-proposed" hx-swap-oob="true">' in text
    offer = text[text.index('<div id="zs-proposed"') :]
    assert "Nothing syncs until" not in offer[: offer.index("</div>")]
    with connected_admin.host.app.app_context():
        count = connected_admin.state.db.session.scalar(sa.select(sa.func.count(FieldMap.id)))
    assert count == 1
