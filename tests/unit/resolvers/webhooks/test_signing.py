"""Signatures cover the timestamp and the exact body, and age out."""

from __future__ import annotations

import hashlib
import hmac

from resolvers.webhooks.signing import new_secret, signature, verify


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"whsec_key", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert signature("whsec_key", 1700000000, b'{"a":1}') == f"v1={expected}"


def test_a_receiver_accepts_the_signature_and_refuses_any_change() -> None:
    secret, body, now = new_secret(), b'{"id":"whd_1"}', 1_700_000_000
    header = signature(secret, now, body)
    assert verify(secret, now, body, header, now=now + 10)
    assert not verify(secret, now, body + b" ", header, now=now)
    assert not verify(secret, now + 1, body, header, now=now)  # the timestamp is signed too
    assert not verify(new_secret(), now, body, header, now=now)
    assert not verify(secret, now, body, header, now=now + 301)  # a recorded delivery replayed later


def test_secrets_are_long_and_distinct() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50 and all(secret.startswith("whsec_") and len(secret) >= 40 for secret in secrets)
