"""Encryption at rest for integration secrets (MoySklad tokens, Mindbox keys): Fernet.

The key comes from ``FIELD_ENCRYPTION_KEY`` (a Fernet key) or, when unset, is derived
from ``SECRET_KEY`` with HKDF, so rotating SECRET_KEY without setting the former makes
stored secrets unreadable — set FIELD_ENCRYPTION_KEY in production.
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils.translation import gettext as _


class SecretUnreadableError(Exception):
    """A stored secret cannot be decrypted with the current key."""


@cache
def _fernet(field_key: str, secret_key: str) -> Fernet:
    if field_key:
        return Fernet(field_key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cxplatform-secrets", info=b"fernet").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _current_fernet() -> Fernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY, settings.SECRET_KEY)


def secret_encrypt(plaintext: str) -> str:
    return _current_fernet().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _current_fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadableError(_("A stored secret cannot be decrypted: was the encryption key changed?")) from None
