"""Encryption of Zoho tokens at rest, with key rotation.

A refresh token never expires until revoked (reference §1.7), so a database dump that holds
one in clear is a standing key to the CRM. Tokens are stored encrypted with Fernet; several
keys may be configured, newest first, so a key can be rotated without a moment in which
stored tokens are unreadable.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .errors import ConfigurationError, EncryptionKeyError


class TokenVault:
    """Encrypts with the newest key and decrypts with any configured key."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ConfigurationError("ZOHO_SYNC_ENCRYPTION_KEYS holds no key.")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode() if isinstance(key, str) else key))
            except (ValueError, TypeError):
                raise ConfigurationError(
                    f"Key number {position} in ZOHO_SYNC_ENCRYPTION_KEYS is not a Fernet key "
                    "(32 url-safe base64-encoded bytes). Make one with: python -c 'from "
                    "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
                ) from None
        self._multi = MultiFernet(fernets)

    def encrypt(self, secret: str) -> bytes:
        return self._multi.encrypt(secret.encode("utf-8"))

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._multi.decrypt(bytes(ciphertext)).decode("utf-8")
        except InvalidToken:
            raise EncryptionKeyError(
                "The stored Zoho tokens cannot be decrypted with any key in "
                "ZOHO_SYNC_ENCRYPTION_KEYS. Put back the key they were written with (keys are "
                "listed newest first), or reconnect to Zoho to store new tokens."
            ) from None

    def rotate(self, ciphertext: bytes) -> bytes:
        """Re-encrypt with the newest key (readable by any configured key)."""
        try:
            return self._multi.rotate(bytes(ciphertext))
        except InvalidToken:
            raise EncryptionKeyError(
                "A stored token cannot be decrypted with any configured key, so it cannot be "
                "rotated. Keep the old key in ZOHO_SYNC_ENCRYPTION_KEYS until rotation is done."
            ) from None
