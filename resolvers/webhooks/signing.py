"""Signatures of deliveries: HMAC-SHA256 over ``"<timestamp>.<body>"`` with the endpoint's secret.

The timestamp (Unix seconds) is part of what is signed, so a receiver that refuses old
timestamps (five minutes is usual) cannot be fed a recorded delivery again later.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
DELIVERY_HEADER = "Aicn-Delivery-Id"
EVENT_HEADER = "Aicn-Event"
TIMESTAMP_HEADER = "Aicn-Timestamp"
SIGNATURE_HEADER = "Aicn-Signature"
SCHEME = "v1"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Aicn-Signature`` header's value: ``v1=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify(secret: str, timestamp: int, body: bytes, header: str, *, now: float, tolerance_seconds: float = 300) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent."""
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header.strip())
