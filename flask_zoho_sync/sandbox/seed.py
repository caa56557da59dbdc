"""Deterministic demo data: the demo's custom fields and believable leads and contacts.

The same ``--seed N`` always yields the same people, so a demo script or a screenshot can
rely on them; creation goes through the normal write path, so seeded data obeys the same
rules as everything else.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from .fields import MODULES, store_instant
from .records import apply_batch
from .state import SALES_REP_ID, SandboxState

#: The custom fields the demo maps host groups and ids to (on both modules).
DEMO_FIELDS = [
    {"api_name": "Newsletter", "field_label": "Newsletter", "data_type": "boolean"},
    {"api_name": "VIP", "field_label": "VIP", "data_type": "boolean"},
    {"api_name": "Volunteers", "field_label": "Volunteers", "data_type": "boolean"},
    {
        "api_name": "Membership_Level",
        "field_label": "Membership Level",
        "data_type": "picklist",
        "pick_list_values": ["Bronze", "Silver", "Gold"],
    },
    {"api_name": "Birthday", "field_label": "Birthday", "data_type": "date"},
    {
        "api_name": "Contact_Id",
        "field_label": "Contact Id",
        "data_type": "text",
        "length": 50,
        "unique": True,
    },
    {"api_name": "Contact_URL", "field_label": "Contact URL", "data_type": "website"},
]

FIRST_NAMES = [
    "Olivia", "Liam", "Amelia", "Noah", "Isla", "Jack", "Mia", "Oliver", "Ava", "William",
    "Grace", "Henry", "Chloe", "Lucas", "Zoe", "Thomas", "Ruby", "James", "Harper", "Leo",
    "Priya", "Arjun", "Mei", "Hiroshi", "Fatima", "Omar", "Sofia", "Mateo", "Aroha", "Tane",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Nguyen", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin",
    "Anderson", "Thompson", "Walker", "Harris", "Lee", "Ryan", "Robinson", "Kelly", "King",
    "Patel", "Singh", "Chen", "Tanaka", "Haddad", "Garcia", "Rossi", "Ngata", "O'Brien",
]  # fmt: skip
COMPANIES = [
    ("Harbour Bridge Consulting", "harbourbridge.example"),
    ("Red Gum Software", "redgum.example"),
    ("Coastal Wellness Co", "coastalwellness.example"),
    ("Outback Logistics", "outbacklogistics.example"),
    ("Southern Cross Events", "southerncross.example"),
    ("Blue Mountains Analytics", "bluemountains.example"),
    ("Kookaburra Media", "kookaburra.example"),
    ("Wattle & Co Legal", "wattlelegal.example"),
]
CITIES = ["Sydney", "Melbourne", "Brisbane", "Perth", "Adelaide", "Hobart", "Canberra"]
SOURCES = ["Web Download", "Trade Show", "Employee Referral", "Partner", "Cold Call"]
LEVELS = ["Bronze", "Silver", "Gold"]


def seed_demo(state: SandboxState, count: int) -> None:
    """Add the demo custom fields (if missing) and ``count`` leads plus ``count // 4`` contacts."""
    rng = random.Random(20260115)
    for module in MODULES:
        existing = state.field_map(module)
        for spec in DEMO_FIELDS:
            if spec["api_name"] not in existing:
                state.add_custom_field(module, spec)
    for module, total in (("Leads", count), ("Contacts", max(1, count // 4))):
        items = []
        for n in range(total):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            company, domain = rng.choice(COMPANIES)
            handle = f"{first}.{last}".lower().replace("'", "")
            item = {
                "First_Name": first,
                "Last_Name": last,
                "Email": f"{handle}.{n + 1}@{domain}",
                "Phone": f"+61 2 {rng.randint(9000, 9999)} {rng.randint(1000, 9999)}",
                "Lead_Source": rng.choice(SOURCES),
                "Newsletter": rng.random() < 0.5,
                "VIP": rng.random() < 0.15,
                "Volunteers": rng.random() < 0.25,
                "Membership_Level": rng.choice(LEVELS),
                "Birthday": f"{rng.randint(1955, 2002)}-{rng.randint(1, 12):02d}-"
                f"{rng.randint(1, 28):02d}",
            }
            if module == "Leads":
                item |= {
                    "Company": company,
                    "City": rng.choice(CITIES),
                    "Lead_Status": "Not Contacted",
                }
            else:
                item |= {"Mailing_City": rng.choice(CITIES), "Department": "Membership"}
            items.append(item)
        outcome = apply_batch(state, module, "insert", items, SALES_REP_ID)
        # Spread creation over the past days so "modified since" demos have history.
        now = state.now().replace(microsecond=0)
        for age, record_id in enumerate(reversed(outcome.inserted)):
            record = state.data["records"][module][record_id]
            stamp = store_instant(now - timedelta(hours=3 * (age + 1)))
            record["Created_Time"] = record["Modified_Time"] = stamp
    state.save()


def seeded_state(*, seed: int = 0, **options: Any) -> SandboxState:
    """A new sandbox org holding ``seed`` demo leads (``options`` go to ``SandboxState``).

    An org restored from its ``state_file`` keeps what it held and is not seeded again. The
    count is remembered, so a reset without a count of its own seeds the same demo again.
    """
    state = SandboxState(**options)
    state.seed_count = seed
    if seed and not state.restored:
        with state.lock:
            seed_demo(state, seed)
    return state


def reset_seeded(
    state: SandboxState,
    *,
    seed: int | None = None,
    keep_custom_fields: bool = False,
    keep_tokens: bool = False,
) -> None:
    """Reset the org and put ``seed`` demo leads back (default: the count it started with)."""
    count = state.seed_count if seed is None else seed
    state.reset(
        keep_custom_fields=keep_custom_fields,
        keep_tokens=keep_tokens,
        refill=(lambda fresh: seed_demo(fresh, count)) if count else None,
    )
