"""The admin pages in a real headless Chromium, as an admin uses them: connect through the
sandbox's consent page, map fields, run a sync and watch the progress bar finish, open a
failed record and retry it. Screenshots of each step go to test-artifacts/."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from flask_zoho_sync import get_state
from flask_zoho_sync.web import register_admin
from tests.conftest import TEST_REDIS_URL
from tests.e2e.chromium import chromium, skip_without_chromium
from tests.hostapp import make_host_app

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"

skip_without_chromium()

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium("zoho-sync-chromium-") as driver:
        yield driver


@pytest.fixture
def served(tmp_path: Path, zoho_sandbox: Any, redis_client: Any) -> Iterator[tuple[str, Any]]:
    """A host app on a real port with the admin pages, configured for the sandbox."""
    host = make_host_app(
        f"sqlite:///{tmp_path / 'e2e.sqlite3'}",
        SECRET_KEY="e2e-secret",
        ZOHO_SYNC_REDIS_URL=TEST_REDIS_URL,
        ZOHO_SYNC_ACCOUNTS_URL=zoho_sandbox.accounts_server,
        ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS=zoho_sandbox.accounts_server,
        ZOHO_SYNC_CLIENT_ID=zoho_sandbox.client_id,
        ZOHO_SYNC_CLIENT_SECRET=zoho_sandbox.client_secret,
    )
    state = get_state(host.app)
    state.admin_check = lambda: True
    register_admin(host.app, state)
    with host.app.app_context():
        session = host.db.session
        session.add_all(
            [
                host.Contact(
                    first_name="Ann", last_name="Lee", email="ann@example.org", company="Same Co"
                ),
                host.Contact(
                    first_name="Bo", last_name="Ray", email="bo@example.org", company="Same Co"
                ),
            ]
        )
        session.commit()
    server = make_server("127.0.0.1", 0, host.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/admin/zoho", host
    finally:
        server.shutdown()
        thread.join(5)
        with host.app.app_context():
            host.db.session.remove()
            host.db.engine.dispose()


def shot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"e2e-{name}.png"))


def click(driver: Any, xpath: str) -> None:
    WebDriverWait(driver, 10).until(ec.element_to_be_clickable((By.XPATH, xpath))).click()


def wait_text(driver: Any, text: str, seconds: float = 15) -> None:
    # A navigation or an htmx swap can replace <body> between finding it and reading it:
    # that is "not there yet", so keep waiting rather than fail.
    WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: text in d.find_element(By.TAG_NAME, "body").text
    )


def test_an_admin_connects_maps_synchronises_and_retries_a_failure(
    browser: Any, served: tuple[str, Any], zoho_sandbox: Any
) -> None:
    base, host = served
    zoho_sandbox.add_custom_field(
        "Leads", api_name="Badge", field_label="Badge", data_type="text", length=20, unique=True
    )

    # Connect: our page -> the sandbox's consent page -> back to the settings.
    browser.get(f"{base}/")
    click(browser, "//button[normalize-space()='Connect Zoho CRM']")
    wait_text(browser, "Authorise access")
    shot(browser, "1-consent")
    click(browser, "//button[@id='authorise']")
    wait_text(browser, "Settings")
    click(browser, "//input[@name='module' and @value='Leads']")
    click(browser, "//button[normalize-space()='Save settings']")
    wait_text(browser, "Leads")
    shot(browser, "2-settings")

    # Map: load Zoho's fields, then add rows one by one (company goes to a unique field).
    browser.get(f"{base}/mapping")
    click(browser, "//form[contains(@action, 'mapping/refresh')]//button")
    wait_text(browser, "fields from Zoho")
    for host_key, zoho_field in (
        ("last_name", "Last_Name"),
        ("email", "Email"),
        ("company", "Badge"),
    ):
        host_select = browser.find_element(By.XPATH, "(//select[@name='host_key'])[1]")
        Select(host_select).select_by_value(host_key)
        Select(browser.find_element(By.XPATH, "(//select[@name='zoho_field'])[1]")).select_by_value(
            zoho_field
        )
        click(browser, "(//button[normalize-space()='Add'])[1]")
        # The answer swaps the section in: wait for that, not for the field's name, which the
        # offer of standard pairs may already show.
        WebDriverWait(browser, 15).until(ec.staleness_of(host_select))
        wait_text(browser, f"({zoho_field})")
    shot(browser, "3-mapping")

    # Synchronise: preview first (a dry run the worker makes while the page polls for it),
    # then open the per-record diff.
    from flask_zoho_sync import jobs
    from flask_zoho_sync.workers import SimpleSyncWorker

    def work_queue() -> None:
        # The worker runs here (RQ's signal handling needs the main thread) while the
        # browser, a process of its own, keeps polling.
        with host.app.app_context():
            state = get_state()
            SimpleSyncWorker([jobs.queue_for(state)], connection=state.redis()).work(
                burst=True, with_scheduler=True
            )

    browser.get(f"{base}/sync")
    click(browser, "//input[@name='mode' and @value='all']")
    click(browser, "//button[normalize-space()='Preview the changes']")
    wait_text(browser, "waiting for the worker to start the plan")
    # Following the plan swaps in the plan alone: a choice made meanwhile is kept.
    click(browser, "//input[@name='mode' and @value='since_last']")
    work_queue()
    wait_text(browser, "Run this sync", seconds=30)
    assert "Plan: All records" in browser.find_element(By.ID, "zs-sync").text
    kept = browser.find_element(By.XPATH, "//input[@name='mode' and @value='since_last']")
    assert kept.is_selected()
    click(browser, "//details/summary")
    wait_text(browser, "Badge")
    shot(browser, "4-plan")
    assert zoho_sandbox.records("Leads") == []  # the plan wrote nothing

    # Then run it, and watch the progress bar until the worker has finished the job.
    click(browser, "//button[normalize-space()='Run this sync']")
    wait_text(browser, "waiting for the worker")
    shot(browser, "5-queued")
    work_queue()
    wait_text(browser, "Some records failed", seconds=30)
    shot(browser, "6-finished")

    # History: the failed record, with Zoho's reason, and a retry.
    browser.get(f"{base}/history")
    wait_text(browser, "Records that failed")
    assert "Badge" in browser.find_element(By.TAG_NAME, "body").text
    shot(browser, "7-history")
    click(browser, "//button[normalize-space()='Retry']")
    wait_text(browser, "will be sent to Zoho again")
    shot(browser, "8-retried")

    # Redis gone: htmx must swap in the offer to run in the request, and that run works.
    state = get_state(host.app)
    state.config = replace(state.config, redis_url="redis://127.0.0.1:1/0")
    state._redis = None
    browser.get(f"{base}/sync")
    click(browser, "//button[normalize-space()='Run without preview']")
    wait_text(browser, "The job queue did not answer")
    shot(browser, "9-redis-down")
    click(browser, "//button[normalize-space()='Run now in this request']")
    wait_text(browser, "Result", seconds=30)
    assert "finished" in browser.find_element(By.ID, "zs-sync").text
    shot(browser, "10-ran-in-request")
