"""``flask --app demo_app demo-init``: create the demo's tables, admin login and seed contacts."""

from __future__ import annotations

import random
from datetime import date

import click
from flask.cli import with_appcontext

from .models import MEMBERSHIP_LEVELS, Contact, Group, User, db

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "zoho-demo"
GROUPS = ("Newsletter", "VIP", "Volunteers")

_FIRST = (
    "Ava",
    "Noah",
    "Mia",
    "Leo",
    "Isla",
    "Jack",
    "Zoe",
    "Oliver",
    "Ruby",
    "Henry",
    "Chloe",
    "Lucas",
    "Grace",
    "Ethan",
    "Lily",
    "Mason",
    "Ella",
    "James",
    "Aria",
    "Finn",
)
_LAST = (
    "Nguyen",
    "Smith",
    "Patel",
    "Garcia",
    "Kowalski",
    "O'Brien",
    "Haddad",
    "Tanaka",
    "Müller",
    "Rossi",
    "Silva",
    "Cohen",
    "Ivanova",
    "Dubois",
    "Kim",
    "Jensen",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Walker",
)
_COMPANIES = (
    "Harbour Bakery",
    "Blue Gum Studio",
    "Northwind Traders",
    "Acme Surveys",
    "Tidewater Legal",
    "Pioneer Bikes",
)
_CITIES = (
    ("Sydney", "NSW", "2000"),
    ("Melbourne", "VIC", "3000"),
    ("Brisbane", "QLD", "4000"),
    ("Perth", "WA", "6000"),
    ("Hobart", "TAS", "7000"),
)


def seed_contacts(count: int, rng: random.Random) -> None:
    groups = {group.name: group for group in db.session.scalars(db.select(Group))}
    for index in range(count):
        first, last = _FIRST[index % len(_FIRST)], _LAST[(index * 7) % len(_LAST)]
        city, state, postcode = _CITIES[index % len(_CITIES)]
        contact = Contact(
            first_name=first,
            last_name=last,
            email=f"{first}.{last}".lower().replace("'", "").replace("ü", "u") + "@example.org",
            phone=f"+61 2 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            company=rng.choice(_COMPANIES),
            city=city,
            state=state,
            postcode=postcode,
            country="Australia",
            birthday=date(rng.randint(1960, 2004), rng.randint(1, 12), rng.randint(1, 28)),
            membership_level=rng.choice((*MEMBERSHIP_LEVELS, None)),
            subscribed=rng.random() > 0.15,
        )
        contact.groups = [groups[name] for name in GROUPS if rng.random() < 0.4]
        db.session.add(contact)


@click.command("demo-init")
@click.option("--contacts", "count", default=20, show_default=True, help="Seed contacts to add.")
@with_appcontext
def seed_command(count: int) -> None:
    """Create the tables, the admin login and seed contacts (only into an empty database)."""
    db.create_all()
    if db.session.scalar(db.select(User).where(User.email == ADMIN_EMAIL)) is None:
        admin = User(email=ADMIN_EMAIL, is_admin=True)
        admin.set_password(ADMIN_PASSWORD)
        db.session.add(admin)
    for name in GROUPS:
        if db.session.scalar(db.select(Group).where(Group.name == name)) is None:
            db.session.add(Group(name=name))
    db.session.flush()
    if db.session.scalar(db.select(db.func.count()).select_from(Contact)) == 0:
        seed_contacts(count, random.Random(7))
        click.echo(f"Added {count} seed contacts.")
    db.session.commit()
    click.echo(f"Log in as {ADMIN_EMAIL} with password {ADMIN_PASSWORD}.")
