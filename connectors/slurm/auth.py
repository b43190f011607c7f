"""Credentials for slurmrestd: a fixed token, or short-lived tokens minted from the key.

Slurm's JWT is a plain HS256 token with the claims ``iat``, ``exp`` and ``sun`` (the
Slurm user name), signed with the cluster's ``jwt_hs256.key``; minting one needs only the
standard library. Nothing here ever puts a token in a repr or a message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

from connectors.http import redact


class TokenSource:
    """Hands out the token to send with the next request."""

    _token: str = ""  # the last token handed out

    def current(self) -> str:
        raise NotImplementedError

    def redact(self, text: str) -> str:
        """``text`` with the token cut out, should anything ever echo it."""
        return redact(text, (self._token,), "<token>")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<hidden>)"


class StaticToken(TokenSource):
    """A token handed over by the operator (for example from ``scontrol token``)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the Slurm token is empty")
        self._token = token

    def current(self) -> str:
        return self._token


class MintedToken(TokenSource):
    """Tokens minted from the cluster's JWT key, renewed ``margin`` seconds before expiry."""

    def __init__(
        self,
        key_file: Path,
        user_name: str,
        *,
        lifespan: int = 600,
        margin: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if margin >= lifespan:
            raise ValueError("the renewal margin must be shorter than the token lifespan")
        self.key_file = Path(key_file)
        self.user_name = user_name
        self.lifespan = lifespan
        self.margin = margin
        self._clock = clock
        self._key: bytes | None = None
        self._expires = 0

    def current(self) -> str:
        now = int(self._clock())
        if not self._token or now >= self._expires - self.margin:
            if self._key is None:
                self._key = self.key_file.read_bytes()
            self._token = mint_token(self._key, self.user_name, now, self.lifespan)
            self._expires = now + self.lifespan
        return self._token


def mint_token(key: bytes, user_name: str, issued_at: int, lifespan: int) -> str:
    """An HS256 JWT that slurmctld accepts for ``user_name`` until ``issued_at + lifespan``."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iat": issued_at, "exp": issued_at + lifespan, "sun": user_name}
    signing_input = f"{_b64(json.dumps(header, separators=(',', ':')).encode())}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
