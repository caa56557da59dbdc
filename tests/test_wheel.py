"""The built wheel is whole: installed alone in a fresh virtualenv, outside the checkout, its
admin pages and the sandbox render from site-packages, and it brings no ``demo_app``.

Slow (it builds a wheel and installs Flask and friends into a new virtualenv, from pip's
cache or PyPI), so it is marked ``slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flask_zoho_sync"

pytestmark = pytest.mark.slow

HOST_APP = r"""
import json
import sys
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import flask_zoho_sync
from flask_zoho_sync import ZohoSync
from flask_zoho_sync.sandbox.app import create_sandbox_app


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Contact(db.Model):
    __tablename__ = "contact"
    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str | None] = mapped_column(sa.String(40))
    last_name: Mapped[str | None] = mapped_column(sa.String(80))
    email: Mapped[str | None] = mapped_column(sa.String(120))


here = Path(__file__).resolve().parent
app = Flask("installedhost")
app.config.update(
    SECRET_KEY="installed-secret",
    SQLALCHEMY_DATABASE_URI=f"sqlite:///{here / 'installed.sqlite3'}",
    ZOHO_SYNC_CLIENT_ID="id",
    ZOHO_SYNC_CLIENT_SECRET="secret",
    ZOHO_SYNC_ENCRYPTION_KEYS=sys.argv[1],
    ZOHO_SYNC_REDIS_URL=sys.argv[2],
)
db.init_app(app)
ZohoSync(app, db=db, contact_model=Contact, admin_check=lambda: True)
with app.app_context():
    db.create_all()

client = app.test_client()
answers = {}
for rule in app.url_map.iter_rules():
    if (
        rule.endpoint.startswith("zoho_sync.")
        and "GET" in rule.methods
        and not rule.arguments
        and rule.endpoint != "zoho_sync.oauth_callback"  # answers Zoho, not a page
        and rule.endpoint not in ("zoho_sync.health", "zoho_sync.metrics")  # for monitors
    ):
        answers[rule.rule] = client.get(rule.rule).status_code
health = client.get("/admin/zoho/health")
metrics = client.get("/admin/zoho/metrics")
monitors = {
    "health": [health.status_code, health.get_json()["healthy"]],
    "metrics": [metrics.status_code, metrics.get_json()["error"]],
}
static = client.get("/admin/zoho/static/zoho_sync/htmx-2.0.11.min.js")
answers["htmx"] = static.status_code
answers["css"] = client.get("/admin/zoho/static/zoho_sync/admin.css").status_code
sandbox = create_sandbox_app().test_client()
answers["sandbox"] = sandbox.get("/").status_code

with app.test_request_context():
    loader = app.jinja_env.loader
    _, template_file, _ = loader.get_source(app.jinja_env, "zoho_sync/layout.html")
blueprint = app.blueprints["zoho_sync"]
print(json.dumps({
    "answers": answers,
    "monitors": monitors,
    "package": flask_zoho_sync.__file__,
    "template": template_file,
    "static": str(Path(blueprint.static_folder) / "zoho_sync" / "htmx-2.0.11.min.js"),
    "sys_path": sys.path,
    "demo_app": __import__("importlib").util.find_spec("demo_app") is not None,
}))
"""


def _data_files() -> set[str]:
    """Every file of the package that is not Python: templates, static files, vendored htmx."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }


def test_the_wheel_installs_alone_and_serves_every_page_from_site_packages(
    tmp_path: Path,
) -> None:
    # Build from a copy, so the checkout gets no build/ or egg-info; demo_app comes along to
    # prove the wheel leaves it out rather than never seeing it.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("flask_zoho_sync", "demo_app"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-v",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = built.stdout + built.stderr
    assert built.returncode == 0, log[-3000:]
    assert "deprecat" not in log.lower(), [
        line for line in log.splitlines() if "deprecat" in line.lower()
    ]
    (wheel,) = (tmp_path / "dist").glob("flask_zoho_sync-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        top_level = next(name for name in names if name.endswith("top_level.txt"))
        assert archive.read(top_level).decode().split() == ["flask_zoho_sync"]
    assert not any(name.startswith("demo_app") for name in names)
    missing = _data_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert "flask_zoho_sync/sandbox/templates/index.html" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]

    host = tmp_path / "host"
    host.mkdir()
    (host / "installed_host.py").write_text(HOST_APP)
    from cryptography.fernet import Fernet

    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH",)}
    ran = subprocess.run(
        [str(python), "installed_host.py", Fernet.generate_key().decode(), TEST_REDIS_URL],
        cwd=host,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    site_packages = str(venv)
    assert not any(
        str(ROOT) == entry or entry.startswith(f"{ROOT}/") for entry in report["sys_path"]
    )
    assert report["package"].startswith(site_packages) and "site-packages" in report["package"]
    assert report["template"].startswith(site_packages), report["template"]
    assert report["static"].startswith(site_packages), report["static"]
    assert report["demo_app"] is False, "no demo_app is importable from the installed wheel"
    answers = report["answers"]
    for page in (
        "/admin/zoho/",
        "/admin/zoho/settings",
        "/admin/zoho/mapping",
        "/admin/zoho/sync",
        "/admin/zoho/history",
    ):
        assert page in answers, f"{page} is among the installed pages: {answers}"
    assert all(status == 200 for status in answers.values()), answers
    # Not connected: health answers 503 (unhealthy); the wheel alone has no
    # prometheus-client, and the metrics route says how to add it.
    assert report["monitors"]["health"] == [503, False]
    assert report["monitors"]["metrics"] == [
        404,
        "Prometheus metrics need the prometheus-client package: pip install "
        "'Flask-Zoho-Sync[metrics]'.",
    ]
