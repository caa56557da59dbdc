"""The demo's own contact database: plain columns, custom fields, groups, subscription."""

from __future__ import annotations

from datetime import date, datetime, timezone

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

MEMBERSHIP_LEVELS = ("Bronze", "Silver", "Gold")

contact_groups = sa.Table(
    "contact_groups",
    db.metadata,
    sa.Column("contact_id", sa.ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("group_id", sa.ForeignKey("contact_group.id", ondelete="CASCADE"), primary_key=True),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Group(db.Model):  # type: ignore[name-defined]
    """A newsletter or member group; each can map to a Zoho boolean field."""

    __tablename__ = "contact_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)


class Contact(db.Model):  # type: ignore[name-defined]
    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str | None] = mapped_column(sa.String(40))
    last_name: Mapped[str | None] = mapped_column(sa.String(80))
    email: Mapped[str | None] = mapped_column(sa.String(120), index=True)
    phone: Mapped[str | None] = mapped_column(sa.String(30))
    mobile: Mapped[str | None] = mapped_column(sa.String(30))
    company: Mapped[str | None] = mapped_column(sa.String(120))
    job_title: Mapped[str | None] = mapped_column(sa.String(80))
    street: Mapped[str | None] = mapped_column(sa.String(250))
    city: Mapped[str | None] = mapped_column(sa.String(100))
    state: Mapped[str | None] = mapped_column(sa.String(100))
    postcode: Mapped[str | None] = mapped_column(sa.String(30))
    country: Mapped[str | None] = mapped_column(sa.String(100))
    description: Mapped[str | None] = mapped_column(sa.Text)
    birthday: Mapped[date | None] = mapped_column(sa.Date)
    membership_level: Mapped[str | None] = mapped_column(sa.String(16))
    subscribed: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=_now, onupdate=_now
    )
    groups: Mapped[list[Group]] = relationship(secondary=contact_groups, order_by=Group.name)

    @property
    def display_name(self) -> str:
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return name or self.email or f"Contact {self.id}"


class User(db.Model):  # type: ignore[name-defined]
    """Who may log in to the demo; admins may also open the Zoho sync pages."""

    __tablename__ = "demo_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(120), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_admin: Mapped[bool] = mapped_column(sa.Boolean, default=False)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)
