"""The demo's contact pages: list, view (the page a Zoho record links back to), add, edit."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from flask_zoho_sync.dbids import primary_key_fits, row_by_id

from .auth import login_required
from .models import MEMBERSHIP_LEVELS, Contact, Group, db

contacts = Blueprint("contacts", __name__)

TEXT_FIELDS = (
    ("first_name", "First name", 40),
    ("last_name", "Last name", 80),
    ("email", "Email", 120),
    ("phone", "Phone", 30),
    ("mobile", "Mobile", 30),
    ("company", "Company", 120),
    ("job_title", "Job title", 80),
    ("street", "Street", 250),
    ("city", "City", 100),
    ("state", "State", 100),
    ("postcode", "Postcode", 30),
    ("country", "Country", 100),
)


def _contact_or_404(contact_id: int) -> Contact:
    # An id past the column's range names no contact; the database would raise, not say so.
    contact = row_by_id(db.session, Contact, contact_id)
    if contact is None:
        abort(404)
    return contact


def _apply_form(contact: Contact) -> list[str]:
    """Copy the submitted form onto the contact; return what is wrong, if anything."""
    problems: list[str] = []
    form = request.form
    for name, label, limit in TEXT_FIELDS:
        value = form.get(name, "").strip()
        if len(value) > limit:
            problems.append(f"{label} is longer than {limit} characters.")
        setattr(contact, name, value or None)
    if contact.email and "@" not in contact.email:
        problems.append("Email must look like name@example.com.")
    if not (contact.email or contact.last_name):
        problems.append("Give at least an email or a last name.")
    contact.description = form.get("description", "").strip() or None
    birthday = form.get("birthday", "").strip()
    try:
        contact.birthday = date.fromisoformat(birthday) if birthday else None
    except ValueError:
        problems.append("Birthday must be a date like 1990-04-30.")
    level = form.get("membership_level", "")
    if level and level not in MEMBERSHIP_LEVELS:
        problems.append(f"Membership level must be one of {', '.join(MEMBERSHIP_LEVELS)}.")
    contact.membership_level = level or None
    contact.subscribed = form.get("subscribed") == "on"
    wanted = {
        int(group_id)
        for group_id in form.getlist("groups")
        if group_id.isascii()
        and group_id.isdigit()
        and len(group_id) <= 19
        and primary_key_fits(db.session, Group, int(group_id))
    }
    contact.groups = list(db.session.scalars(db.select(Group).where(Group.id.in_(wanted))))
    return problems


@contacts.route("/")
@login_required
def index() -> Any:
    query = request.args.get("q", "").strip()
    statement = db.select(Contact).order_by(Contact.last_name, Contact.first_name, Contact.id)
    if query:
        like = f"%{query}%"
        statement = statement.where(
            db.or_(
                Contact.first_name.ilike(like),
                Contact.last_name.ilike(like),
                Contact.email.ilike(like),
                Contact.company.ilike(like),
            )
        )
    return render_template("contacts.html", contacts=db.session.scalars(statement).all(), q=query)


@contacts.route("/contacts/<int:contact_id>")
@login_required
def show(contact_id: int) -> Any:
    return render_template("contact.html", contact=_contact_or_404(contact_id))


@contacts.route("/contacts/new", methods=["GET", "POST"])
@login_required
def create() -> Any:
    contact = Contact()
    if request.method == "POST":
        problems = _apply_form(contact)
        if not problems:
            db.session.add(contact)
            db.session.commit()
            flash(f"Added {contact.display_name}.", "success")
            return redirect(url_for("contacts.show", contact_id=contact.id))
        for problem in problems:
            flash(problem, "error")
    return _form(contact, is_new=True)


@contacts.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@login_required
def edit(contact_id: int) -> Any:
    contact = _contact_or_404(contact_id)
    if request.method == "POST":
        problems = _apply_form(contact)
        if not problems:
            db.session.commit()
            flash(f"Saved {contact.display_name}.", "success")
            return redirect(url_for("contacts.show", contact_id=contact.id))
        db.session.rollback()
        for problem in problems:
            flash(problem, "error")
        contact = _contact_or_404(contact_id)
    return _form(contact, is_new=False)


@contacts.route("/contacts/<int:contact_id>/delete", methods=["POST"])
@login_required
def delete(contact_id: int) -> Any:
    contact = _contact_or_404(contact_id)
    name = contact.display_name
    db.session.delete(contact)
    db.session.commit()
    flash(f"Deleted {name}.", "success")
    return redirect(url_for("contacts.index"))


def _form(contact: Contact, *, is_new: bool) -> str:
    return render_template(
        "contact_form.html",
        contact=contact,
        is_new=is_new,
        text_fields=TEXT_FIELDS,
        levels=MEMBERSHIP_LEVELS,
        groups=db.session.scalars(db.select(Group).order_by(Group.name)).all(),
    )
