"""Secrets at rest: integration tokens and webhook signing secrets are Fernet-encrypted before they reach the
database and decrypted only where a provider call or a signature check needs them."""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from leadpilot.settings import get_settings


@lru_cache
def _fernet() -> MultiFernet:
    configured = get_settings().fernet_keys
    if configured:
        keys = [Fernet(k.strip().encode()) for k in configured.split(",") if k.strip()]
    else:
        derived = base64.urlsafe_b64encode(hashlib.sha256(b"leadpilot-fernet:" + get_settings().secret_key.encode())
                                           .digest())
        keys = [Fernet(derived)]
    return MultiFernet(keys)


def encrypt(values: dict[str, Any]) -> str:
    """A JSON object of secrets, encrypted (authenticated, timestamped) for the `credentials_encrypted` column."""
    return _fernet().encrypt(json.dumps(values, separators=(",", ":")).encode()).decode()


def decrypt(token: str | None) -> dict[str, Any]:
    """The secrets back; {} for nothing stored. A token from another key raises ValueError (never garbage)."""
    if not token:
        return {}
    try:
        return dict(json.loads(_fernet().decrypt(token.encode())))
    except InvalidToken as exc:
        raise ValueError("Stored credentials cannot be decrypted with the configured FERNET_KEYS.") from exc
