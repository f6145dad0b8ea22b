"""Record ids: Kestra-like short ids, 22 base62 characters carrying a uuid4."""

from __future__ import annotations

import uuid

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 22  # 62**22 > 2**128: every uuid fits


def new_id() -> str:
    """A new random id: a uuid4 written in base62, 22 characters, URL-safe."""
    number = uuid.uuid4().int
    chars: list[str] = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))
