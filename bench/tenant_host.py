"""The multi-tenant host of ``bench.bench_tenants``: what its RQ workers load (``FLASK_APP``).

A platform's host: every contact belongs to a site (its tenant), and the extension is told
so (``SQLAlchemyContactAdapter(Contact, tenant="site")``), as in ``tests/tenants``. The
benchmark and its worker processes build the same app from the environment the benchmark
sets (``BENCH_TENANTS_*``), so they share the database, Redis, queue, encryption key and
the list of sandbox orgs the tenants are connected to.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_zoho_sync.adapter import SQLAlchemyContactAdapter
from flask_zoho_sync.extension import ZohoSync
from flask_zoho_sync.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Contact(db.Model):  # type: ignore[name-defined]
    __tablename__ = "site_contact"
    id: Mapped[int] = mapped_column(primary_key=True)
    site: Mapped[str] = mapped_column(sa.String(32), index=True)
    first_name: Mapped[str | None] = mapped_column(sa.String(40))
    last_name: Mapped[str | None] = mapped_column(sa.String(80))
    email: Mapped[str | None] = mapped_column(sa.String(120))
    company: Mapped[str | None] = mapped_column(sa.String(120))
    subscribed: Mapped[bool] = mapped_column(sa.Boolean, default=True)


def bench_config() -> dict[str, Any]:
    """The app's settings, from the variables ``bench.bench_tenants`` exports."""
    servers = os.environ.get("BENCH_TENANTS_SERVERS", "")
    return {
        "SQLALCHEMY_DATABASE_URI": os.environ["BENCH_TENANTS_DB"],
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "SECRET_KEY": "bench-tenants",
        "ZOHO_SYNC_CLIENT_ID": DEFAULT_CLIENT_ID,
        "ZOHO_SYNC_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "ZOHO_SYNC_ACCOUNTS_URL": servers.split(",")[0] if servers else None,
        "ZOHO_SYNC_EXTRA_ACCOUNTS_SERVERS": servers,
        "ZOHO_SYNC_ENCRYPTION_KEYS": os.environ["BENCH_TENANTS_KEY"],
        "ZOHO_SYNC_REDIS_URL": os.environ["BENCH_TENANTS_REDIS"],
        "ZOHO_SYNC_QUEUE": os.environ.get("BENCH_TENANTS_QUEUE", "zoho-bench-tenants"),
        "ZOHO_SYNC_PUSH_DELAY": int(os.environ.get("BENCH_TENANTS_PUSH_DELAY", "5")),
        # Bulk APIs only from 5,200 records: a tenant of 1,000 goes by REST, as on Zoho.
    }


def create_app() -> Flask:
    app = Flask("bench_tenant_host")
    app.config.update(bench_config())
    db.init_app(app)
    ZohoSync(
        app,
        db=db,
        adapter=SQLAlchemyContactAdapter(Contact, modified=None, tenant="site"),
        admin_check=lambda: True,
        tenant=lambda: None,
    )
    return app
