"""Errors the extension raises about its own set-up (Zoho's errors live in ``zoho.errors``)."""

from __future__ import annotations


class ZohoSyncError(Exception):
    """Root of the extension's own errors."""


class ConfigurationError(ZohoSyncError, RuntimeError):
    """A ``ZOHO_SYNC_*`` setting is missing or malformed.

    It inherits ``RuntimeError`` because that is what Flask extensions conventionally raise
    at start-up, so a host's existing handling keeps working.
    """


class NotConnectedError(ZohoSyncError):
    """An action needs a Zoho connection and there is none yet."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "Not connected to Zoho CRM. Connect from the admin pages or run "
            "'flask zoho-sync connect --refresh-token TOKEN'."
        )


class EncryptionKeyError(ConfigurationError):
    """Stored tokens cannot be decrypted with the configured keys."""
