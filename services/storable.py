"""Text Postgres can store: no NUL character (text columns cannot hold one) and no lone UTF-16 surrogate
(it has no UTF-8 encoding at all, so it cannot even be sent to the database)."""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """What makes `text` unstorable ("a NUL character", "a lone surrogate"), or None when it can be stored."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "a lone surrogate"


def storable(text: str) -> str:
    """`text` without what Postgres cannot store (for provider payloads that must be acknowledged anyway)."""
    return _UNSTORABLE.sub("", text)
