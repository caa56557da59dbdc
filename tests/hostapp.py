"""A small host application, built the way a real host would integrate the extension."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from flask_zoho_sync.extension import ZohoSync
from tests.tables import fresh_tables as fresh_tables_for

#: One key for the whole test run, so separate app instances can read each other's tokens.
TEST_ENCRYPTION_KEY = Fernet.generate_key().decode()


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class HostApp:
    app: Flask
    db: SQLAlchemy
    Contact: Any
    Group: Any
    extension: ZohoSync


def make_host_app(database_url: str, *, fresh_tables: bool = True, **config: Any) -> HostApp:
    """``fresh_tables=False`` joins a database another process set up (a worker's app)."""

    class Base(DeclarativeBase):
        pass

    db = SQLAlchemy(model_class=Base)

    contact_groups = sa.Table(
        "contact_groups",
        db.metadata,
        sa.Column("contact_id", sa.ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "group_id", sa.ForeignKey("contact_group.id", ondelete="CASCADE"), primary_key=True
        ),
    )

    class Group(db.Model):  # type: ignore[name-defined]
        __tablename__ = "contact_group"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(80), unique=True)

    class Contact(db.Model):  # type: ignore[name-defined]
        __tablename__ = "contact"
        id: Mapped[int] = mapped_column(primary_key=True)
        first_name: Mapped[str | None] = mapped_column(sa.String(40))
        last_name: Mapped[str | None] = mapped_column(sa.String(80))
        email: Mapped[str | None] = mapped_column(sa.String(120))
        phone: Mapped[str | None] = mapped_column(sa.String(30))
        company: Mapped[str | None] = mapped_column(sa.String(120))
        last_seen: Mapped[datetime | None] = mapped_column(sa.DateTime)
        subscribed: Mapped[bool] = mapped_column(sa.Boolean, default=True)
        updated_at: Mapped[datetime] = mapped_column(
            sa.DateTime(timezone=True), default=_now, onupdate=_now
        )
        groups: Mapped[list[Group]] = relationship(secondary=contact_groups)

    app = Flask("hostapp")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        ZOHO_SYNC_CLIENT_ID="sandbox-client-id",
        ZOHO_SYNC_CLIENT_SECRET="sandbox-client-secret",
        ZOHO_SYNC_ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
        TESTING=True,
    )
    app.config.update(config)
    db.init_app(app)
    extension = ZohoSync(app, db=db, contact_model=Contact)
    if fresh_tables:
        with app.app_context():
            fresh_tables_for(db)
    return HostApp(app=app, db=db, Contact=Contact, Group=Group, extension=extension)
