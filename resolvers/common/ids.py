"""Opaque global ids (``base64("Type:key")``) and page cursors."""

from __future__ import annotations

import base64
import binascii
import functools
import re

from resolvers.common.errors import BadRequest

#: a 64-bit key written in ASCII digits: `str.isdigit` also accepts `²` and `٣`, which
#: `int()` either refuses or reads as another number
_KEY = re.compile(r"[0-9]{1,19}")


def parse_key(text: str) -> int | None:
    """The non-negative 64-bit integer ``text`` spells in ASCII digits; None for anything else."""
    if _KEY.fullmatch(text) is None:
        return None
    key = int(text)
    return key if key < 2**63 else None


@functools.lru_cache(maxsize=16384)  # a big answer repeats ids (a center's in each of its units), and base64 is not free
def to_global_id(type_name: str, key: int | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")


def from_global_id(global_id: str) -> tuple[str, str] | None:
    """(type name, key) of a global id, or None when it is not one of ours."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        decoded = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    type_name, separator, key = decoded.partition(":")
    if not separator or not type_name or not key:
        return None
    return type_name, key


def int_key(global_id: str, type_name: str) -> int | None:
    """The integer key of a global id of ``type_name``; None for anything else."""
    decoded = from_global_id(global_id)
    if decoded is None or decoded[0] != type_name:
        return None
    return parse_key(decoded[1])


@functools.lru_cache(maxsize=4096)  # list positions: the same few hundred on every page
def encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(f"cursor:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        prefix, _, key = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("the cursor is not valid") from None
    number = parse_key(key) if prefix == "cursor" else None
    if number is None:
        raise BadRequest("the cursor is not valid")
    return number


MAX_PAGE = 100
DEFAULT_PAGE = 20


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE
    if first < 1 or first > MAX_PAGE:
        raise BadRequest(f"`first` must be between 1 and {MAX_PAGE}")
    return first
