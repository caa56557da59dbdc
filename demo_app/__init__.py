"""A small contact database that uses Flask-Zoho-Sync the way a real host app would.

Run it with ``bin/demo`` (which also starts the Zoho sandbox, Redis and a worker), or on its
own with ``flask --app demo_app run``. Every ``ZOHO_SYNC_*`` key, ``DATABASE_URL`` and
``REDIS_URL`` is read from the environment; without them it talks to the local Zoho sandbox.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask, url_for

from flask_zoho_sync.adapter import SQLAlchemyContactAdapter
from flask_zoho_sync.config import settings_from_environ
from flask_zoho_sync.extension import ZohoSync

from .auth import current_user_is_admin, install_auth
from .models import Contact, db

SANDBOX_URL = os.environ.get("ZOHO_SANDBOX_URL", "http://127.0.0.1:8765")

_adapter = SQLAlchemyContactAdapter(Contact, contact_url="contacts.show")
# Segments the admin can limit the sync to on the "What syncs" page (README, "Choosing what
# syncs"): one the database reads, one checked on each contact.
_adapter.add_scope_filter("Has a company", Contact.company.is_not(None))
_adapter.add_scope_filter("Members", lambda contact: bool(contact.membership_level))

zoho_sync = ZohoSync(
    db=db,
    adapter=_adapter,
    admin_check=current_user_is_admin,
)


def _instance_secret(app: Flask, name: str, make: Any) -> str:
    """A secret kept in the instance folder, so a demo restart keeps sessions and tokens.

    A real deployment sets SECRET_KEY and ZOHO_SYNC_ENCRYPTION_KEYS in its environment.
    """
    path = Path(app.instance_path) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(config: dict[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    instance_path = instance_path or os.environ.get("DEMO_INSTANCE_PATH")
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get(
            "DATABASE_URL", f"sqlite:///{Path(app.instance_path) / 'demo.sqlite3'}"
        ),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    if not os.environ.get("ZOHO_SYNC_CLIENT_ID"):
        # Without a Zoho API client of your own, the demo talks to the local sandbox.
        app.config.update(
            ZOHO_SYNC_CLIENT_ID="sandbox-client-id",
            ZOHO_SYNC_CLIENT_SECRET="sandbox-client-secret",
            ZOHO_SYNC_ACCOUNTS_URL=SANDBOX_URL,
            ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS=SANDBOX_URL,
        )
    settings_from_environ(os.environ, app.config.__setitem__)
    app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY") or _instance_secret(
        app, "secret-key", lambda: secrets.token_hex(32)
    )
    if not app.config.get("ZOHO_SYNC_ENCRYPTION_KEYS"):
        app.config["ZOHO_SYNC_ENCRYPTION_KEYS"] = _instance_secret(
            app, "zoho-sync-encryption-key", lambda: Fernet.generate_key().decode()
        )
    if config:
        app.config.update(config)

    db.init_app(app)
    zoho_sync.init_app(app)
    install_auth(app)

    from .views import contacts

    app.register_blueprint(contacts)

    from .seed import seed_command

    @app.context_processor
    def zoho_admin_link() -> dict[str, Any]:
        def zoho_admin_url() -> str | None:
            if "zoho_sync.overview" in app.view_functions:
                return url_for("zoho_sync.overview")
            return None

        return {"zoho_admin_url": zoho_admin_url}

    app.cli.add_command(seed_command)
    _create_tables(app)
    return app


def _create_tables(app: Flask) -> None:
    """The demo owns its database, so a fresh DATABASE_URL just works: its tables (the
    contacts' and the sync's) are created on the first start. A real host runs its
    migrations instead; the extension tells it which tables are missing.

    A database that does not answer is left alone here: the sync's CLI and pages say so in
    one line, and the demo's own pages show the driver's error.
    """
    with app.app_context():
        try:
            db.create_all()
        except sa.exc.OperationalError as exc:
            app.logger.warning("The demo could not create its tables: %s", exc.orig)
