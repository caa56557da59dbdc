"""Every admin page, measured in a real Chromium inside three host layouts.

The pages render inside the host's layout, and a host's stylesheet reaches our elements:
the demo's own (``input{display:block;width:100%}``, ``a{color:...}``), a hostile one that
styles every bare element hard the way classless stylesheets do (tests/e2e/hosts/hostile.css),
and Bootstrap 5 (vendored, tests/e2e/hosts/). For each page, in each host, at 1280, 820 and
390 px, the browser measures what an admin would see broken:

* a checkbox or radio off the line of its label, or not just before its text;
* a button whose text contrast is under 4.5:1 (computed colours, background included);
* text squeezed to a character or two per line;
* anything of ours sticking out sideways (the page scrolls horizontally);

and at 1280 px axe-core reports no serious or critical violation, every control has a
label, and every progress bar sits in a live region. A sync is also run with the keyboard
alone. The demo's run writes README's screenshots (docs/*.png), so they cannot go stale.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jinja2 import ChoiceLoader, DictLoader
from werkzeug.serving import make_server

from tests.conftest import TEST_REDIS_URL, _empty_and_reclaim
from tests.e2e.chromium import chromium, skip_without_chromium

# One site and one browser for the whole module (module-scoped fixtures): under pytest-xdist
# its tests stay on one worker rather than each worker building them again.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-any-host")]

ROOT = Path(__file__).resolve().parent.parent.parent
HOSTS_DIR = Path(__file__).resolve().parent / "hosts"
DOCS = ROOT / "docs"
ARTIFACTS = ROOT / "test-artifacts"
PREFIX = "/admin/zoho"

skip_without_chromium()

webdriver = pytest.importorskip("selenium.webdriver")
axe_selenium_python = pytest.importorskip("axe_selenium_python")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

HOSTS = ("demo", "hostile", "bootstrap")
#: README's screenshots, docs/<name>.png, each written by this module's demo run.
SCREENSHOTS = ("overview", "mapping", "synchronise")
WIDTHS = (1280, 820, 390)
AXE_SCRIPT = Path(axe_selenium_python.__file__).parent / "node_modules/axe-core/axe.min.js"

#: Run in the page: what is visibly broken inside our root element (.zs), as a list of
#: [what, where] pairs. Geometry only, from the layout the browser computed.
MEASURE_JS = r"""
const root = document.querySelector('.zs');
if (!root) return [['no .zs root', location.pathname]];
const problems = [];
const where = (el) => {
  const text = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim();
  return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.name ? '[name=' + el.name + ']' : '') + (el.value && el.type !== 'hidden' &&
    el.tagName === 'INPUT' ? '[value=' + el.value + ']' : '') + ' "' + text.slice(0, 40) + '"';
};
const shown = (el) => {
  if (el.closest('.zs-sr, [hidden], template')) return false;
  const box = el.getBoundingClientRect();
  return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== 'hidden';
};
const firstTextLine = (el) => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim() || node.parentElement.closest('.zs-sr')) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0);
    if (rects.length) return rects[0];
  }
  return null;
};

// Each checkbox and radio: on its label's first line, just before the label's text.
for (const input of root.querySelectorAll('input[type=checkbox], input[type=radio]')) {
  if (!shown(input)) continue;
  const label = input.labels && input.labels[0];
  if (!label) { problems.push(['choice without a label', where(input)]); continue; }
  const line = firstTextLine(label);
  if (!line) { problems.push(['label without text', where(input)]); continue; }
  const box = input.getBoundingClientRect();
  const middle = box.top + box.height / 2;
  const onTheLine = middle >= line.top - 1 && middle <= line.bottom + 1;
  const justBefore = box.right <= line.left + 1 && line.left - box.right < 24;
  if (!onTheLine || !justBefore || box.width > 32) {
    problems.push(['choice off its label', where(input) + ` box ${Math.round(box.left)},` +
      `${Math.round(box.top)} ${Math.round(box.width)}x${Math.round(box.height)}, text at ` +
      `${Math.round(line.left)},${Math.round(line.top)}`]);
  }
}

// Each button's text against what is behind it (WCAG contrast, 4.5:1 for normal text).
const rgba = (value) => {
  const parts = value.match(/[\d.]+/g).map(Number);
  return parts.length === 3 ? [...parts, 1] : parts;
};
const over = (top, under) => {
  const a = top[3];
  return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
};
const backdrop = (el) => {
  const layers = [];
  for (let node = el; node; node = node.parentElement) {
    const colour = rgba(getComputedStyle(node).backgroundColor);
    if (colour[3] > 0) layers.push(colour);
    if (colour[3] >= 1) break;
  }
  let colour = [255, 255, 255, 1];
  for (const layer of layers.reverse()) colour = over(layer, colour);
  return colour;
};
const luminance = (c) => {
  const [r, g, b] = c.slice(0, 3).map((v) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
for (const button of root.querySelectorAll('.zs-button, button')) {
  if (!shown(button)) continue;
  const back = backdrop(button);
  const text = over(rgba(getComputedStyle(button).color), back);
  const [light, dark] = [luminance(text), luminance(back)].sort((x, y) => y - x);
  const ratio = (light + 0.05) / (dark + 0.05);
  if (ratio < 4.5) {
    problems.push(['button text contrast ' + ratio.toFixed(2) + ':1', where(button)]);
  }
}

// Text squeezed to a character or two per line.
const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode;
  const text = node.textContent.replace(/\s+/g, '');
  if (text.length < 4 || node.parentElement.closest('.zs-sr, svg')) continue;
  const range = document.createRange();
  range.selectNodeContents(node);
  const rects = [...range.getClientRects()].filter((r) => r.width > 0);
  const lines = new Set(rects.map((r) => Math.round(r.top))).size;
  const widest = Math.max(0, ...rects.map((r) => r.width));
  const size = parseFloat(getComputedStyle(node.parentElement).fontSize);
  if (lines >= 3 && widest < 2.2 * size) {
    problems.push(['text one character per line', where(node.parentElement) +
      ` (${lines} lines, ${Math.round(widest)} px wide)`]);
  }
}

// Nothing of ours sticks out sideways, unless a scroll box of ours holds it (a wide table
// in a narrow card scrolls inside the card); and the page itself does not scroll sideways.
const edge = root.getBoundingClientRect().right;
const scrolls = (el) => {
  for (let node = el.parentElement; node && node !== root; node = node.parentElement) {
    if (getComputedStyle(node).overflowX !== 'visible') return true;
  }
  return false;
};
for (const el of root.querySelectorAll('*')) {
  if (!shown(el)) continue;
  const right = el.getBoundingClientRect().right;
  if (right > edge + 1 && !scrolls(el)) {
    problems.push(['sticks out sideways by ' + Math.round(right - edge) + ' px', where(el)]);
    break;
  }
}
if (edge > window.innerWidth + 1) problems.push(['our pages wider than the window', '']);
const wide = document.documentElement.scrollWidth;
if (wide > window.innerWidth + 1) {
  problems.push(['the page scrolls sideways', `${wide} px in a ${window.innerWidth} px window`]);
}
return problems;
"""

#: Run in the page at the widest size: what a screen reader user would miss.
LABELS_JS = r"""
const root = document.querySelector('.zs');
const problems = [];
for (const control of root.querySelectorAll('input:not([type=hidden]), select, textarea')) {
  const named = (control.labels && [...control.labels].some((l) => l.innerText.trim())) ||
    control.getAttribute('aria-label') || control.getAttribute('aria-labelledby');
  if (!named) problems.push(['control without a label', control.outerHTML.slice(0, 120)]);
}
for (const button of root.querySelectorAll('button, .zs-button')) {
  if (!(button.innerText.trim() || button.getAttribute('aria-label'))) {
    problems.push(['button without a name', button.outerHTML.slice(0, 120)]);
  }
}
for (const bar of root.querySelectorAll('progress')) {
  if (!bar.getAttribute('aria-label')) problems.push(['progress without a name', '']);
  const moving = !bar.hasAttribute('value') || bar.value < bar.max;
  if (moving && !bar.closest('[aria-live], [role=status]')) {
    problems.push(['progress not announced (no live region around it)', bar.outerHTML]);
  }
}
return problems;
"""

AXE_RUN_JS = """
const done = arguments[arguments.length - 1];
// checkboxgroup and radiogroup are rules axe-core 4 removed as wrong (a lone checkbox per
// form is fine); the axe shipped for Python < 3.12 still has them.
axe.run('.zs', {resultTypes: ['violations'],
                rules: {checkboxgroup: {enabled: false}, radiogroup: {enabled: false}}}).then(
  (results) => done(results.violations.filter((v) => ['serious', 'critical'].includes(v.impact))
    .map((v) => [v.id + ' (' + v.impact + ')',
                 v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')])),
  (error) => done([['axe failed', String(error)]]));
"""


@dataclass
class Site:
    """The demo app on a real port, its admin logged in, in one Chromium for the module."""

    url: str
    app: Any
    client: Any
    sandbox: Any
    driver: Any
    problems: list[str] = field(default_factory=list)

    def work_queue(self) -> None:
        from flask_zoho_sync import jobs
        from flask_zoho_sync.extension import get_state
        from flask_zoho_sync.workers import SimpleSyncWorker

        with self.app.app_context():
            state = get_state()
            SimpleSyncWorker([jobs.queue_for(state)], connection=state.redis()).work(
                burst=True, with_scheduler=True
            )

    def use_host(self, host: str) -> None:
        self.driver.add_cookie({"name": "zs-test-host", "value": host, "path": "/"})

    def csrf_post(self, path: str, data: dict[str, str]) -> Any:
        import re

        # The extension's token, from the header htmx sends (the demo's forms carry its own).
        page = self.client.get(f"{PREFIX}/settings").get_data(as_text=True)
        token = re.search(r"X-CSRFToken&#34;: &#34;([^&]+)&#34;", page)
        assert token, page[:500]
        answer = self.client.post(f"{PREFIX}{path}", data={"csrf_token": token.group(1), **data})
        assert answer.status_code < 400, answer.get_data(as_text=True)[:2000]
        return answer


def _host_layouts(app: Any) -> None:
    """Put the host layout chosen by the browser's ``zs-test-host`` cookie around our pages,
    the way a host app does: by providing its own zoho_sync/layout.html."""
    from flask import request, send_from_directory

    demo_layout = (ROOT / "demo_app/templates/zoho_sync/layout.html").read_text()
    layouts = {
        "zoho_sync/layout.html": "{% extends zs_test_host_layout() %}",
        "hosts/demo.html": demo_layout,
        "hosts/hostile.html": (HOSTS_DIR / "hostile.html").read_text(),
        "hosts/bootstrap.html": (HOSTS_DIR / "bootstrap.html").read_text(),
    }
    app.jinja_env.loader = ChoiceLoader([DictLoader(layouts), app.jinja_env.loader])

    @app.context_processor
    def host_layout() -> dict[str, Callable[[], str]]:
        def zs_test_host_layout() -> str:
            chosen = request.cookies.get("zs-test-host", "demo")
            return f"hosts/{chosen if chosen in HOSTS else 'demo'}.html"

        return {"zs_test_host_layout": zs_test_host_layout}

    app.add_url_rule(
        "/test-host/<path:name>",
        "test_host_asset",
        lambda name: send_from_directory(HOSTS_DIR, name),
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, zoho_sandbox_url: str) -> Iterator[Site]:
    import redis

    from demo_app import create_app
    from demo_app.models import db
    from demo_app.seed import ADMIN_EMAIL, ADMIN_PASSWORD
    from flask_zoho_sync.sandbox.handle import SandboxHandle
    from tests.hostapp import TEST_ENCRYPTION_KEY

    sandbox = SandboxHandle(zoho_sandbox_url)
    sandbox.reset()
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    _empty_and_reclaim(connection)  # keeps this session's claim on the database
    folder = tmp_path_factory.mktemp("hosts")
    with pytest.MonkeyPatch.context() as patch:
        for key in ("DATABASE_URL", "ZOHO_SYNC_CLIENT_ID", "ZOHO_SYNC_ENCRYPTION_KEYS"):
            patch.delenv(key, raising=False)
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'demo.sqlite3'}",
                "SECRET_KEY": "hosts-secret",
                "ZOHO_SYNC_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                "ZOHO_SYNC_REDIS_URL": TEST_REDIS_URL,
                "ZOHO_SYNC_ACCOUNTS_URL": sandbox.accounts_server,
                "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS": sandbox.accounts_server,
                "ZOHO_SYNC_CLIENT_ID": sandbox.client_id,
                "ZOHO_SYNC_CLIENT_SECRET": sandbox.client_secret,
            },
            instance_path=str(folder / "instance"),
        )
    _host_layouts(app)
    seeded = app.test_cli_runner().invoke(args=["demo-init", "--contacts", "6"])
    assert seeded.exit_code == 0, seeded.output

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    client = app.test_client()
    _log_in_client(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    try:
        with chromium("zoho-sync-hosts-", height=900, implicit_wait=0) as driver:
            driver.get(f"{url}/login")
            driver.find_element(By.NAME, "email").send_keys(ADMIN_EMAIL)
            driver.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD)
            driver.find_element(By.XPATH, "//form//button").click()
            _wait_text(driver, "Log out")
            yield Site(url=url, app=app, client=client, sandbox=sandbox, driver=driver)
    finally:
        server.shutdown()
        thread.join(5)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        _empty_and_reclaim(connection)
        connection.close()
        sandbox.close()


def _log_in_client(client: Any, email: str, password: str) -> None:
    import re

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    answer = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]


@pytest.fixture(scope="module")
def chosen_site(site: Site) -> Site:
    """Connected to the sandbox and Leads chosen; nothing mapped yet."""
    from flask_zoho_sync.extension import get_state

    with site.app.app_context():
        grant = site.sandbox.mint_refresh_token()
        get_state().connect_with_refresh_token(grant["refresh_token"], grant["accounts_server"])
    site.csrf_post(
        "/settings", {"module": "Leads", "time_zone": "UTC", "conflict_policy": "newest"}
    )
    return site


@pytest.fixture(scope="module")
def synced_site(chosen_site: Site) -> Site:
    """Then fields mapped (one of them to a unique Zoho field two contacts share, so records
    fail), and one sync run: every page has content."""
    from demo_app.models import MEMBERSHIP_LEVELS, Contact, db

    site = chosen_site

    site.sandbox.add_custom_field(
        "Leads", api_name="Badge", field_label="Badge", data_type="text", length=40, unique=True
    )
    same_level = {"company": "Same Co", "membership_level": MEMBERSHIP_LEVELS[0]}
    with site.app.app_context():
        db.session.add_all(
            [
                Contact(first_name="Ann", last_name="Lee", email="ann@example.org", **same_level),
                Contact(first_name="Bo", last_name="Ray", email="bo@example.org", **same_level),
            ]
        )
        db.session.commit()
    site.csrf_post("/mapping/refresh", {})
    site.csrf_post("/mapping/defaults", {})
    site.csrf_post(
        "/mapping/field/add",
        {
            "host_key": "membership_level",
            "zoho_field": "Badge",
            "direction": "to_zoho",
            "policy": "",
        },
    )
    site.csrf_post("/sync/plan", {"mode": "all"})
    site.work_queue()
    site.csrf_post("/sync/run", {"mode": "all"})
    site.work_queue()
    return site


def _wait_text(driver: Any, text: str, seconds: float = 20) -> None:
    # Case-blind: a host's text-transform changes what the browser reports as the text.
    try:
        WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: text.lower() in d.find_element(By.TAG_NAME, "body").text.lower()
        )
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "hosts-text-missing.png"))
        raise AssertionError(f"{text!r} did not appear on {driver.current_url}") from None


def _click(driver: Any, xpath: str) -> None:
    try:
        target = WebDriverWait(driver, 15).until(ec.element_to_be_clickable((By.XPATH, xpath)))
        # Bootstrap scrolls smoothly: bring the target to the middle at once, then click.
        driver.execute_script(
            "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", target
        )
        target.click()
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "hosts-click-failed.png"))
        raise


def _follow(driver: Any, xpath: str) -> None:
    driver.get(driver.find_element(By.XPATH, xpath).get_attribute("href"))


def _width(driver: Any, width: int, height: int = 900) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    # Two frames, so the layout at the new width is the one measured.
    driver.execute_async_script(
        "const done = arguments[0];"
        "requestAnimationFrame(() => requestAnimationFrame(() => done()));"
    )


def _settled(driver: Any) -> None:
    """htmx has loaded and no request of it is in flight."""
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && !!window.htmx && "
            "!document.querySelector('.htmx-request');"
        )
    )


def measure(site: Site, host: str, page: str) -> None:
    """Measure the page on screen at every width (and, at 1280 px, its accessibility);
    what is wrong is collected in ``site.problems`` so one run reports every page."""
    driver = site.driver
    _settled(driver)
    for width in WIDTHS:
        _width(driver, width)
        for what, where in driver.execute_script(MEASURE_JS):
            site.problems.append(f"{host} · {page} · {width} px: {what}: {where}")
    # Back to the browser's own window size: clicks scroll and aim by that.
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    ARTIFACTS.mkdir(exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in page)
    driver.save_screenshot(str(ARTIFACTS / f"hosts-{host}-{slug}.png"))
    checks = driver.execute_script(LABELS_JS)
    if not driver.execute_script("return !!window.axe"):
        driver.execute_script(AXE_SCRIPT.read_text(encoding="utf8"))
    checks += driver.execute_async_script(AXE_RUN_JS)
    for what, where in checks:
        site.problems.append(f"{host} · {page}: {what}: {where}")


def shoot(site: Site, host: str, name: str) -> None:
    """README's screenshots come from the demo's layout at 1280 px, as the page is now."""
    assert name in SCREENSHOTS, name
    if host != "demo":
        return
    driver = site.driver
    height = min(int(driver.execute_script("return document.body.scrollHeight")), 1400)
    _width(driver, 1280, height)
    driver.execute_script("window.scrollTo(0, 0)")
    DOCS.mkdir(exist_ok=True)
    driver.save_screenshot(str(DOCS / f"{name}.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _report(site: Site) -> None:
    problems, site.problems[:] = list(site.problems), []
    if problems:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "hosts-problems.json").write_text(json.dumps(problems, indent=1))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


def test_readme_shows_the_screenshots_this_module_writes() -> None:
    import re

    shown = set(re.findall(r"\(docs/([\w-]+)\.png\)", (ROOT / "README.md").read_text()))
    assert shown == set(SCREENSHOTS)


@pytest.mark.parametrize("host", HOSTS)
def test_pages_before_connecting_look_right_in_every_host(site: Site, host: str) -> None:
    driver = site.driver
    driver.get(f"{site.url}{PREFIX}/")
    site.use_host(host)
    for page, path, text in (
        ("connect (overview)", "/", "Connect Zoho CRM"),
        ("settings, not connected", "/settings", "Zoho module"),
        ("error: refused sign-in", "/oauth/callback?state=forged&code=x", "Connect Zoho CRM"),
        ("error: bad page number", "/history?page=zero", "not a page number"),
    ):
        driver.get(f"{site.url}{PREFIX}{path}")
        _wait_text(driver, text)
        measure(site, host, page)
    _report(site)


@pytest.mark.parametrize("host", HOSTS)
def test_pages_before_mapping_look_right_in_every_host(chosen_site: Site, host: str) -> None:
    site, driver = chosen_site, chosen_site.driver
    driver.get(f"{site.url}{PREFIX}/")
    site.use_host(host)
    for page, path, text in (
        ("overview: map the fields", "/", "Map the fields"),
        ("synchronise: not ready", "/sync", "Not ready to synchronise"),
        ("mapping: nothing mapped", "/mapping", "Load the Zoho fields"),
    ):
        driver.get(f"{site.url}{PREFIX}{path}")
        _wait_text(driver, text)
        measure(site, host, page)
    _report(site)


@pytest.mark.parametrize("host", HOSTS)
def test_every_admin_page_looks_right_in_every_host(synced_site: Site, host: str) -> None:
    site, driver = synced_site, synced_site.driver
    driver.get(f"{site.url}{PREFIX}/")
    site.use_host(host)

    driver.get(f"{site.url}{PREFIX}/")
    _wait_text(driver, "Activity, last 14 days")
    measure(site, host, "overview")
    shoot(site, host, "overview")

    driver.get(f"{site.url}{PREFIX}/settings")
    _wait_text(driver, "When both sides changed the same field")
    measure(site, host, "settings")

    driver.get(f"{site.url}{PREFIX}/scope")
    _wait_text(driver, "Matches the sync would not guess")
    measure(site, host, "what syncs")

    driver.get(f"{site.url}{PREFIX}/mapping")
    _wait_text(driver, "Add a field")
    measure(site, host, "mapping")
    shoot(site, host, "mapping")

    driver.get(f"{site.url}{PREFIX}/history")
    _wait_text(driver, "Records that failed")
    measure(site, host, "history")
    _follow(driver, "(//table//a[contains(@href, '/history/runs/')])[1]")
    _wait_text(driver, "Record changes")
    measure(site, host, "run detail")
    _follow(driver, "(//table//a[contains(@href, '/history/contact')])[1]")
    # The heading names the contact ("History of Ann Lee (ann@...)"), or "contact N".
    WebDriverWait(driver, 20).until(
        lambda d: (
            "/history/contact" in d.current_url
            and any(
                h.text.lower().startswith("history of") for h in d.find_elements(By.TAG_NAME, "h1")
            )
        )
    )
    measure(site, host, "contact history")

    # Synchronise, through each state the page shows: the plan being made, the plan, the run
    # waiting for the worker, and the finished run.
    driver.get(f"{site.url}{PREFIX}/sync")
    _click(driver, "//input[@name='mode' and @value='all']")
    _click(driver, "//button[normalize-space()='Preview the changes']")
    _wait_text(driver, "waiting for the worker to start the plan")
    measure(site, host, "synchronise: making the plan")
    site.work_queue()
    _wait_text(driver, "Run this sync", seconds=30)
    _click(driver, "//details/summary")
    measure(site, host, "synchronise: the plan")
    _click(driver, "//button[normalize-space()='Run this sync']")
    _wait_text(driver, "waiting for the worker")
    measure(site, host, "synchronise: queued run")
    site.work_queue()
    _wait_text(driver, "What changed in this run", seconds=30)
    measure(site, host, "synchronise: finished run")
    shoot(site, host, "synchronise")
    _report(site)


def test_a_sync_runs_with_the_keyboard_alone(synced_site: Site) -> None:
    """Tab to a choice, Space to pick it, Tab to the button, Enter; then Space on the plan's
    Run button: every step reachable, and each focused control visibly marked."""
    site, driver = synced_site, synced_site.driver
    driver.get(f"{site.url}{PREFIX}/")
    site.use_host("demo")
    driver.get(f"{site.url}{PREFIX}/sync")
    _wait_text(driver, "Preview the changes")
    _settled(driver)
    body = driver.find_element(By.TAG_NAME, "body")
    body.click()

    def tab_to(describe: str, matches: str) -> None:
        for _ in range(80):
            driver.switch_to.active_element.send_keys(Keys.TAB)
            if driver.execute_script(f"const el = document.activeElement; return {matches};"):
                outline = driver.execute_script(
                    "const s = getComputedStyle(document.activeElement);"
                    "return [s.outlineStyle, parseFloat(s.outlineWidth)];"
                )
                assert outline[0] != "none" and outline[1] >= 1, f"{describe}: no focus ring"
                return
        raise AssertionError(f"Tab never reached {describe}")

    tab_to("the record choice", "el.name === 'mode'")
    driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    chosen = driver.execute_script("return document.activeElement.value")
    driver.switch_to.active_element.send_keys(Keys.SPACE)
    assert driver.execute_script("return document.activeElement.checked"), chosen
    tab_to("Preview the changes", "el.innerText.trim() === 'Preview the changes'")
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    _wait_text(driver, "waiting for the worker to start the plan")
    site.work_queue()
    _wait_text(driver, "Run this sync", seconds=30)
    tab_to("Run this sync", "el.innerText.trim() === 'Run this sync'")
    driver.switch_to.active_element.send_keys(Keys.SPACE)
    _wait_text(driver, "waiting for the worker")
    site.work_queue()
    _wait_text(driver, "What changed in this run", seconds=30)
    assert "finished" in driver.find_element(By.ID, "zs-sync").text
