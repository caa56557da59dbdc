"""The sync engine: mapping, coercion and merge, working on plain data.

Nothing in this package imports Flask, SQLAlchemy or an HTTP library; the push and pull
get a Zoho client and a host adapter passed in, so the engine can be tested on dicts.
"""

from __future__ import annotations

from flask_zoho_sync.sync.coercion import (
    CoercionError,
    Compatibility,
    Direction,
    HostField,
    ZohoField,
    check_pair,
    to_host_value,
    to_zoho_value,
)
from flask_zoho_sync.sync.mapping import (
    Binding,
    ConflictPolicy,
    FieldMapping,
    GroupMapping,
    HostChanges,
    Mapping,
    SystemFieldMapping,
    default_field_mappings,
)
from flask_zoho_sync.sync.merge import Conflict, MergeResult, diff, merge, resolve_conflict

__all__ = [
    "Binding",
    "CoercionError",
    "Compatibility",
    "Conflict",
    "ConflictPolicy",
    "Direction",
    "FieldMapping",
    "GroupMapping",
    "HostChanges",
    "HostField",
    "Mapping",
    "MergeResult",
    "SystemFieldMapping",
    "ZohoField",
    "check_pair",
    "default_field_mappings",
    "diff",
    "merge",
    "resolve_conflict",
    "to_host_value",
    "to_zoho_value",
]
