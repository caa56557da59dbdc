"""Flask-Zoho-Sync: keep a Flask app's contacts and Zoho CRM in step, both ways."""

from __future__ import annotations

from .adapter import ContactAdapter, HostGroup, SQLAlchemyContactAdapter
from .errors import ConfigurationError, EncryptionKeyError, NotConnectedError, ZohoSyncError
from .extension import ZohoSync, get_state
from .zoho.errors import (
    ZohoError,
    ZohoReconnectRequired,
    ZohoRecordError,
    ZohoRetryLater,
    ZohoSettingError,
)

__all__ = [
    "ConfigurationError",
    "ContactAdapter",
    "EncryptionKeyError",
    "HostGroup",
    "NotConnectedError",
    "SQLAlchemyContactAdapter",
    "ZohoError",
    "ZohoReconnectRequired",
    "ZohoRecordError",
    "ZohoRetryLater",
    "ZohoSettingError",
    "ZohoSync",
    "ZohoSyncError",
    "get_state",
]
