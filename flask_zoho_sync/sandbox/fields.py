"""The field catalogue of the sandbox's Leads and Contacts, and how values are checked.

Zoho validates every write against field metadata (type, length, picklist values,
mandatory and unique flags; reference §2.4-§2.6, §3.1). The sandbox keeps one catalogue so
that `GET /settings/fields` describes exactly the rules the write path enforces: code that
reads the metadata and respects it will also pass the sandbox's validation, and code that
ignores it fails here the way it would fail against Zoho.
"""

from __future__ import annotations

import functools
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .zoho_time import ZohoTimeRefused, format_date, parse_date, parse_datetime

MODULES = ("Leads", "Contacts")

#: Module ids as Zoho would show them in metadata and DUPLICATE_DATA details.
MODULE_IDS = {"Leads": "4876876000000002175", "Contacts": "4876876000000002179"}

#: data_type -> json_type, as in the Leads sample of the fields API (reference §3.1).
JSON_TYPES = {
    "text": "string",
    "textarea": "string",
    "email": "string",
    "phone": "string",
    "website": "string",
    "picklist": "string",
    "multiselectpicklist": "jsonarray",
    "boolean": "boolean",
    "integer": "integer",
    "bigint": "string",
    "double": "double",
    "currency": "double",
    "date": "string",
    "datetime": "string",
    "lookup": "jsonobject",
    "ownerlookup": "jsonobject",
    "profileimage": "string",
    "layout": "jsonobject",
}

#: Default and maximum lengths per type (reference §3.1, "Field type limits").
DEFAULT_LENGTHS = {
    "text": 255,
    "textarea": 2000,
    "email": 100,
    "phone": 30,
    "website": 255,
    "picklist": 120,
    "multiselectpicklist": 2000,
    "integer": 9,
    "bigint": 18,
    "double": 16,
    "currency": 16,
}
MAX_LENGTHS = {**DEFAULT_LENGTHS, "textarea": 32000}

#: Only these types may carry "Do not allow duplicate values" (Kaizen #56, reference §2.6).
UNIQUE_CAPABLE = ("text", "email", "phone", "integer", "bigint", "website")

#: Custom fields may be of these types (the ones the sync maps).
CUSTOM_TYPES = (
    "text",
    "textarea",
    "email",
    "phone",
    "website",
    "integer",
    "bigint",
    "double",
    "currency",
    "boolean",
    "date",
    "datetime",
    "picklist",
    "multiselectpicklist",
)

#: System-defined duplicate-check fields of the two modules (reference §2.6).
SYSTEM_DUPLICATE_CHECK = {"Leads": ("Email",), "Contacts": ("Email",)}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: A phone number as Zoho takes it: digits with the usual separators, an optional leading +
#: and an extension; words are refused (``expected_data_type: phone``, recorded answer).
_PHONE = re.compile(
    r"^\s*\+?[\d\s().\-/#*,;]*(?:(?:x|ext\.?|extension)\s*\d[\d\s]*)?$", re.IGNORECASE
)

SALUTATIONS = ["-None-", "Mr.", "Mrs.", "Ms.", "Dr.", "Prof."]
LEAD_SOURCES = [
    "-None-",
    "Advertisement",
    "Cold Call",
    "Employee Referral",
    "External Referral",
    "Online Store",
    "Partner",
    "Public Relations",
    "Sales Email Alias",
    "Seminar Partner",
    "Internal Seminar",
    "Trade Show",
    "Web Download",
    "Web Research",
    "Chat",
]
LEAD_STATUSES = [
    "-None-",
    "Attempted to Contact",
    "Contact in Future",
    "Contacted",
    "Junk Lead",
    "Lost Lead",
    "Not Contacted",
    "Pre-Qualified",
    "Not Qualified",
]
INDUSTRIES = [
    "-None-",
    "ASP (Application Service Provider)",
    "Data/Telecom OEM",
    "ERP (Enterprise Resource Planning)",
    "Government/Military",
    "Large Enterprise",
    "ManagementISV",
    "MSP (Management Service Provider)",
    "Network Equipment Enterprise",
    "Non-management ISV",
    "Optical Networking",
    "Service Provider",
    "Small/Medium Enterprise",
    "Storage Equipment",
    "Storage Service Provider",
    "Systems Integrator",
    "Wireless Industry",
]


#: Zoho's ``ui_type`` per data type, as the Leads sample of the fields API shows it; a few
#: standard fields have their own (``UI_TYPE_OVERRIDES``).
UI_TYPES = {
    "text": 1,
    "picklist": 2,
    "textarea": 3,
    "website": 21,
    "date": 24,
    "email": 25,
    "integer": 32,
    "phone": 33,
    "currency": 36,
    "double": 38,
    "bigint": 52,
    "profileimage": 66,
    "multiselectpicklist": 100,
    "lookup": 133,
    "ownerlookup": 8,
    "layout": 208,
    "boolean": 301,
    "datetime": 333,
}
UI_TYPE_OVERRIDES = {
    "First_Name": 27,
    "Last_Name": 127,
    "Fax": 35,
    "Skype_ID": 37,
    "Twitter": 22,
    "Created_By": 20,
    "Modified_By": 20,
    "Created_Time": 200,
    "Modified_Time": 200,
    "Last_Activity_Time": 786,
    "Tag": 209,
}

#: ``length`` of the types whose values the sandbox does not measure: Zoho still gives a
#: number for every field (120 for pick lists, lookups and date-times, 5 for booleans).
METADATA_LENGTHS = {
    "boolean": 5,
    "date": 20,
    "datetime": 120,
    "lookup": 120,
    "ownerlookup": 120,
    "layout": 50,
    "profileimage": 255,
}

#: Quick-create fields and their places in the quick-create form, as the Leads sample
#: numbers them (``quick_sequence_number`` is a string there).
QUICK_CREATE = {"First_Name": "2", "Last_Name": "3", "Email": "4", "Phone": "5"}
#: What an org admin may change on an editable field (``customizable_properties``).
CUSTOMIZABLE_PROPERTIES = (
    "mandatory",
    "removal",
    "private_field",
    "tooltip",
    "add_to_other_layouts",
)

#: The profiles every field lists (``profiles[]``), with the org's two default profiles.
PROFILES = (
    ("Administrator", "4876876000000026011"),
    ("Standard", "4876876000000026014"),
)
#: The org's one layout, named by ``$layout_id`` in records and ``layout_associations``.
LAYOUT = {"api_name": "Standard__s", "name": "Standard", "id": "4876876000000091055"}
#: Modules the lookups of the catalogue point at, with the ids Zoho's metadata gives them.
LOOKUP_MODULE_IDS = {
    "Accounts": "4876876000000002177",
    "Contacts": MODULE_IDS["Contacts"],
    "Deals": "4876876000000002181",
    "Vendors": "4876876000000002185",
}


def _stable_id(text: str) -> str:
    """A 19-digit id derived from ``text``, so metadata ids survive restarts and resets."""
    return f"4876876{zlib.crc32(text.encode()) % 10**12:012d}"


@dataclass(frozen=True)
class FieldSpec:
    """One field of a module: enough to render metadata and to validate a value.

    ``writable`` is Zoho's ``operation_type.api_create/api_update``; ``system`` marks the
    fields Zoho itself maintains (``read_only`` and read-only for every profile, such as
    ``Locked__s``), which a write may name but never changes.
    """

    api_name: str
    label: str
    data_type: str
    length: int | None = None
    system_mandatory: bool = False
    custom_field: bool = False
    writable: bool = True
    unique: bool = False
    pick_list_values: tuple[str, ...] = field(default_factory=tuple)
    system: bool = False
    json_type: str | None = None
    lookup_module: str | None = None
    #: A custom field keeps the id it was created with when an admin renames it.
    stored_id: str | None = None
    #: An admin made the field read-only for every profile (``field_changes``).
    admin_read_only: bool = False

    @property
    def field_id(self) -> str:
        return self.stored_id or _stable_id(self.api_name)

    def to_json(self) -> dict[str, Any]:
        """Persistable form (custom fields are stored in the state file)."""
        return {
            "api_name": self.api_name,
            "field_label": self.label,
            "data_type": self.data_type,
            "length": self.length,
            "unique": self.unique,
            "pick_list_values": list(self.pick_list_values),
            "id": self.field_id,
            "read_only": self.admin_read_only,
        }

    def _lookup(self) -> dict[str, Any]:
        if self.lookup_module is None:
            return {}
        return {
            "display_label": None,
            "revalidate_filter_during_edit": False,
            "api_name": None,
            "module": {
                "api_name": self.lookup_module,
                "crypt": False,
                "id": LOOKUP_MODULE_IDS.get(self.lookup_module),
            },
            "id": None,
            "query_details": {},
        }

    def metadata(self, module: str) -> dict[str, Any]:
        """The element of `GET /settings/fields` for this field, with every key Zoho's Leads
        sample has (reference §3.1) and values of the same JSON types."""
        kind = self.data_type
        editable = self.writable and not self.system
        length = self.length if self.length is not None else METADATA_LENGTHS.get(kind, 255)
        meta: dict[str, Any] = {
            "associated_module": None,
            "webhook": True,
            "operation_type": self._operation_type(),
            "colour_code_enabled_by_system": False,
            "field_label": self.label,
            "tooltip": None,
            "type": "used",
            "field_read_only": self.system or self.api_name == "Owner",
            "customizable_properties": list(CUSTOMIZABLE_PROPERTIES) if editable else None,
            "display_label": self.label,
            "read_only": self.system or self.admin_read_only,
            "association_details": None,
            "businesscard_supported": editable,
            "multi_module_lookup": {},
            "id": self.field_id,
            "created_time": None,
            "filterable": True,
            "visible": True,
            "profiles": self._profiles(),
            "view_type": self._view_type(editable),
            "separator": False,
            "searchable": kind not in ("profileimage",),
            "external": None,
            "api_name": self.api_name,
            "unique": {"case_sensitive": False} if self.unique else {},
            "enable_colour_code": False,
            "pick_list_values": self._pick_list_metadata(),
            "system_mandatory": self.system_mandatory,
            "virtual_field": False,
            "json_type": self.json_type or JSON_TYPES.get(kind, "string"),
            "crypt": None,
            "created_source": "crm" if self.custom_field else "default",
            "display_type": -1,
            "ui_type": UI_TYPE_OVERRIDES.get(self.api_name, UI_TYPES.get(kind, 1)),
            "modified_time": None,
            "email_parser": {
                "fields_update_supported": False,
                "record_operations_supported": editable,
            },
            "currency": {"rounding_option": "normal", "precision": 2} if kind == "currency" else {},
            "custom_field": self.custom_field,
            "lookup": self._lookup(),
            "hipaa_compliance": None,
            "convert_mapping": (
                {"Contacts": None, "Deals": None, "Accounts": None} if module == "Leads" else {}
            ),
            "rollup_summary": {},
            "length": length,
            "display_field": self.api_name == "Full_Name",
            "pick_list_values_sorted_lexically": False,
            "sortable": kind not in ("textarea", "profileimage", "layout", "multiselectpicklist")
            and self.api_name != "Tag",
            "layout_associations": [dict(LAYOUT)],
            "global_picklist": None,
            "history_tracking": None,
            "data_type": kind,
            "formula": {},
            "hipaa_compliance_enabled": False,
            "decimal_place": 2 if kind in ("double", "currency") else None,
            "mass_update": editable and kind not in ("textarea", "profileimage"),
            "multiselectlookup": {},
            "auto_number": {},
        }
        meta.update(self._kind_metadata(editable))
        return meta

    def _operation_type(self) -> dict[str, bool]:
        return {
            "web_update": self.writable,
            "api_create": self.writable,
            "web_create": self.writable,
            "api_update": self.writable,
        }

    def _profiles(self) -> list[dict[str, str]]:
        """Both default profiles see a field alike: read-only if the system sets it."""
        permission = "read_only" if self.system or self.admin_read_only else "read_write"
        return [
            {"permission_type": permission, "name": name, "id": profile_id}
            for name, profile_id in PROFILES
        ]

    def _view_type(self, editable: bool) -> dict[str, bool]:
        return {
            "view": True,
            "edit": editable,
            "quick_create": self.system_mandatory or self.api_name in QUICK_CREATE,
            "create": editable,
        }

    def _pick_list_metadata(self) -> list[dict[str, Any]]:
        """Choices with ids stable across runs, so a recorded exchange replays the same."""
        return [
            {
                "display_value": value,
                "sequence_number": index + 1,
                "reference_value": value,
                "colour_code": None,
                "actual_value": value,
                "id": _stable_id(self.api_name + value),
                "type": "used",
            }
            for index, value in enumerate(self.pick_list_values)
        ]

    def _kind_metadata(self, editable: bool) -> dict[str, Any]:
        """The keys Zoho only sends for some fields, appended after the common ones as it does."""
        extra: dict[str, Any] = {}
        if self.api_name in QUICK_CREATE and not self.custom_field:
            extra["quick_sequence_number"] = QUICK_CREATE[self.api_name]
        if self.data_type == "textarea":
            extra["textarea"] = {"type": "large" if (self.length or 0) > 2000 else "small"}
        if self.data_type in ("picklist", "multiselectpicklist"):
            extra["blueprint_supported"] = self.data_type == "picklist" and editable
        return extra


def _f(
    api_name: str, label: str, data_type: str, length: int | None = None, **kw: Any
) -> FieldSpec:
    if length is None:
        length = DEFAULT_LENGTHS.get(data_type, METADATA_LENGTHS.get(data_type))
    values = kw.pop("values", ())
    return FieldSpec(api_name, label, data_type, length, pick_list_values=tuple(values), **kw)


def _system(api_name: str, label: str, data_type: str, **kw: Any) -> FieldSpec:
    """A field Zoho maintains: listed and rendered, never written through the API."""
    return _f(api_name, label, data_type, writable=False, system=True, **kw)


RATINGS = ["-None-", "Acquired", "Active", "Market Failed", "Project Cancelled", "Shut Down"]
UNSUBSCRIBED_MODES = ["Consent form", "Manual", "Unsubscribe link", "Zoho Campaigns"]
RECORD_STATUSES = ["Trash", "Available", "Draft"]
DATA_SOURCES = ["API", "CRM UI", "Import", "Web Form"]


def _common(owner_label: str) -> list[FieldSpec]:
    """Fields Leads and Contacts share, in the order the metadata lists them."""
    return [
        _f("Owner", owner_label, "ownerlookup"),
        _f("Salutation", "Salutation", "picklist", 25, values=SALUTATIONS),
        _f("First_Name", "First Name", "text", 40),
        _f("Last_Name", "Last Name", "text", 80, system_mandatory=True),
        _f("Full_Name", "Full Name", "text", 120, writable=False),
        _f("Email", "Email", "email", 100, unique=True),
        _f("Secondary_Email", "Secondary Email", "email", 100),
        _f("Phone", "Phone", "phone", 30),
        _f("Mobile", "Mobile", "phone", 30),
        _f("Fax", "Fax", "text", 30),
        _f("Skype_ID", "Skype ID", "text", 50),
        _f("Twitter", "Twitter", "text", 50),
        _f("Description", "Description", "textarea", 32000),
        _f("Email_Opt_Out", "Email Opt Out", "boolean"),
        _f("Lead_Source", "Lead Source", "picklist", values=LEAD_SOURCES),
        _f("Created_By", "Created By", "ownerlookup", writable=False),
        _f("Modified_By", "Modified By", "ownerlookup", writable=False),
        _f("Created_Time", "Created Time", "datetime", writable=False),
        _f("Modified_Time", "Modified Time", "datetime", writable=False),
        _f("Last_Activity_Time", "Last Activity Time", "datetime", writable=False),
        _f("Layout", "Layout", "layout", 50),
        _f("Tag", "Tag", "text", 2000, json_type="jsonarray"),
        _f("Record_Image", "Record Image", "profileimage"),
        _system("Unsubscribed_Mode", "Unsubscribed Mode", "picklist", values=UNSUBSCRIBED_MODES),
        _system("Unsubscribed_Time", "Unsubscribed Time", "datetime"),
        _system("id", "Record Id", "bigint", length=18),
        _system("Locked__s", "Locked", "boolean"),
        _system("Data_Source", "Data Source", "picklist", values=DATA_SOURCES),
        _system("Record_Status__s", "Record Status", "picklist", values=RECORD_STATUSES),
    ]


_LEADS_ONLY = [
    _f("Company", "Company", "text", 200),
    _f("Designation", "Title", "text", 100),
    _f("Website", "Website", "website", 255),
    _f("Street", "Street", "text", 250),
    _f("City", "City", "text", 100),
    _f("State", "State", "text", 100),
    _f("Zip_Code", "Zip Code", "text", 30),
    _f("Country", "Country", "text", 100),
    _f("Lead_Status", "Lead Status", "picklist", values=LEAD_STATUSES),
    _f("Industry", "Industry", "picklist", values=INDUSTRIES),
    _f("Rating", "Rating", "picklist", values=RATINGS),
    _f("No_of_Employees", "No. of Employees", "integer"),
    _f("Annual_Revenue", "Annual Revenue", "currency"),
    _system("Converted__s", "Converted", "boolean"),
    _f("Converted_Date_Time", "Converted Date Time", "datetime", writable=False),
    _system("Lead_Conversion_Time", "Lead Conversion Time", "integer"),
    _system("Converted_Account", "Converted Account", "lookup", lookup_module="Accounts"),
    _system("Converted_Contact", "Converted Contact", "lookup", lookup_module="Contacts"),
    _system("Converted_Deal", "Converted Deal", "lookup", lookup_module="Deals"),
]

_CONTACTS_ONLY = [
    _f("Account_Name", "Account Name", "lookup", lookup_module="Accounts"),
    _f("Vendor_Name", "Vendor Name", "lookup", lookup_module="Vendors"),
    _f("Reporting_To", "Reporting To", "lookup", lookup_module="Contacts"),
    _f("Title", "Title", "text", 100),
    _f("Department", "Department", "text", 100),
    _f("Date_of_Birth", "Date of Birth", "date"),
    _f("Mailing_Street", "Mailing Street", "text", 250),
    _f("Mailing_City", "Mailing City", "text", 100),
    _f("Mailing_State", "Mailing State", "text", 100),
    _f("Mailing_Zip", "Mailing Zip", "text", 30),
    _f("Mailing_Country", "Mailing Country", "text", 100),
    _f("Other_Street", "Other Street", "text", 250),
    _f("Other_City", "Other City", "text", 100),
    _f("Other_State", "Other State", "text", 100),
    _f("Other_Zip", "Other Zip", "text", 30),
    _f("Other_Country", "Other Country", "text", 100),
    _f("Home_Phone", "Home Phone", "phone", 30),
    _f("Other_Phone", "Other Phone", "phone", 30),
    _f("Assistant", "Assistant", "text", 100),
    _f("Asst_Phone", "Asst Phone", "phone", 30),
]


def standard_fields(module: str) -> list[FieldSpec]:
    """The built-in fields of a module, in the order the metadata lists them (a new list
    each call, of specs built once: every record a REST page renders asks for them, and
    building some 30 specs a record was most of a 200-record page's time)."""
    return list(_standard_fields(module == "Leads"))


@functools.cache
def _standard_fields(leads: bool) -> tuple[FieldSpec, ...]:
    if leads:
        return tuple(_common("Lead Owner") + _LEADS_ONLY)
    return tuple(_common("Contact Owner") + _CONTACTS_ONLY)


class FieldSpecError(ValueError):
    """A custom field definition the sandbox (like Zoho's setup UI) refuses."""


def custom_field(spec: dict[str, Any]) -> FieldSpec:
    """Build a custom field from a control-API payload, applying Zoho's setup rules."""
    api_name = str(spec.get("api_name") or "").strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,99}", api_name):
        raise FieldSpecError("api_name must start with a letter and use letters, digits, _")
    data_type = str(spec.get("data_type") or "text")
    if data_type not in CUSTOM_TYPES:
        raise FieldSpecError(f"data_type must be one of {', '.join(CUSTOM_TYPES)}")
    length = spec.get("length")
    if length is None:
        length = DEFAULT_LENGTHS.get(data_type)
    elif data_type in MAX_LENGTHS:
        length = int(length)
        if not 1 <= length <= MAX_LENGTHS[data_type]:
            raise FieldSpecError(f"length must be 1..{MAX_LENGTHS[data_type]} for {data_type}")
    else:
        length = METADATA_LENGTHS.get(data_type)
    unique = bool(spec.get("unique", False))
    if unique and data_type not in UNIQUE_CAPABLE:
        raise FieldSpecError(f"a {data_type} field cannot be unique")
    values = [str(v) for v in spec.get("pick_list_values") or []]
    if data_type in ("picklist", "multiselectpicklist"):
        if not values:
            raise FieldSpecError("a picklist needs pick_list_values")
        if data_type == "picklist" and "-None-" not in values:
            values.insert(0, "-None-")
    label = str(spec.get("field_label") or api_name.replace("_", " "))
    return FieldSpec(
        api_name,
        label,
        data_type,
        length,
        custom_field=True,
        unique=unique,
        pick_list_values=tuple(values),
        writable=not spec.get("read_only"),
        stored_id=str(spec["id"]) if spec.get("id") else None,
        admin_read_only=bool(spec.get("read_only")),
    )


class ValueProblem(Exception):
    """Why a value was refused; becomes one INVALID_DATA element (reference §2.6)."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__("invalid data")
        self.details = details


def _expect(spec: FieldSpec, expected: str) -> ValueProblem:
    return ValueProblem({"expected_data_type": expected, "api_name": spec.api_name})


def _check_length(spec: FieldSpec, text: str) -> None:
    if spec.length is not None and len(text) > spec.length:
        raise ValueProblem({"maximum_length": spec.length, "api_name": spec.api_name})


def _tags(spec: FieldSpec, value: Any) -> list[dict[str, Any]]:
    """``Tag``: a list of ``{"name": ...}``; each tag gets the id and colour Zoho shows."""
    if not isinstance(value, list) or not all(
        isinstance(tag, dict) and isinstance(tag.get("name"), str) and tag["name"].strip()
        for tag in value
    ):
        raise _expect(spec, "jsonarray")
    names = list(dict.fromkeys(tag["name"].strip() for tag in value))
    return [{"name": name, "id": _stable_id("Tag:" + name), "color_code": None} for name in names]


def coerce_value(spec: FieldSpec, value: Any, user_ids: set[str]) -> Any:
    """Check a written value and return what to store (``None`` means empty).

    The rules follow what Zoho documents for each type; anything Zoho would refuse raises
    ``ValueProblem`` with the details keys Zoho uses (``expected_data_type`` or
    ``maximum_length``) so clients can be tested against the real error shapes.
    """
    if value is None or value == "":
        if spec.data_type == "boolean":
            return False
        if spec.data_type == "multiselectpicklist" or spec.json_type == "jsonarray":
            return []
        return None
    kind = spec.data_type
    if spec.json_type == "jsonarray" and kind == "text":
        return _tags(spec, value)
    if kind in ("text", "textarea", "phone", "website", "email", "profileimage"):
        if not isinstance(value, str):
            raise _expect(spec, kind if kind != "textarea" else "text")
        _check_length(spec, value)
        if kind == "email" and not _EMAIL.match(value):
            raise _expect(spec, "email")
        if kind == "phone" and not (_PHONE.match(value) and any(c.isdigit() for c in value)):
            raise _expect(spec, "phone")
        return value
    if kind in ("integer", "bigint"):
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expect(spec, kind)
        if spec.length is not None and len(str(abs(value))) > spec.length:
            raise ValueProblem({"maximum_length": spec.length, "api_name": spec.api_name})
        return str(value) if kind == "bigint" else value
    if kind in ("double", "currency"):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _expect(spec, "double") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _expect(spec, "double")
        if spec.length is not None and len(str(int(abs(value)))) > spec.length:
            raise ValueProblem({"maximum_length": spec.length, "api_name": spec.api_name})
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _expect(spec, "boolean")
        return value
    if kind == "date":
        try:
            return format_date(parse_date(value))
        except ZohoTimeRefused:
            raise _expect(spec, "date") from None
    if kind == "datetime":
        try:
            return store_instant(parse_datetime(value))
        except ZohoTimeRefused:
            raise _expect(spec, "datetime") from None
    if kind == "picklist":
        if not isinstance(value, str):
            raise _expect(spec, "picklist")
        if value not in spec.pick_list_values:
            raise _expect(spec, "picklist")
        return None if value == "-None-" else value
    if kind == "multiselectpicklist":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _expect(spec, "jsonarray")
        if any(v not in spec.pick_list_values for v in value):
            raise _expect(spec, "multiselectpicklist")
        return list(dict.fromkeys(value))
    if kind == "ownerlookup":
        user_id = value.get("id") if isinstance(value, dict) else None
        if str(user_id) not in user_ids:
            raise _expect(spec, "jsonobject")
        return str(user_id)
    if kind == "lookup":
        if not isinstance(value, dict) or not (value.get("id") or value.get("name")):
            raise _expect(spec, "jsonobject")
        return {"name": value.get("name"), "id": value.get("id")}
    raise _expect(spec, kind)  # pragma: no cover - every catalogue type is handled above


def store_epoch(epoch: float) -> str:
    """The internal form of a POSIX timestamp (channel expiries are kept as timestamps)."""
    return store_instant(datetime.fromtimestamp(epoch, timezone.utc))


def store_instant(moment: datetime) -> str:
    """The internal form of an instant: a UTC string that sorts like the instant."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
