"""Where the gateway is and which token to send: AICN_URL / AICN_TOKEN, else a profile file.

The profile is ``$AICN_PROFILE``, or ``$XDG_CONFIG_HOME/aicn/profile.toml`` (``~/.config/aicn/...``),
a TOML file with ``url`` and ``token``. It holds a secret, so a file that anyone but its owner may
read or write is refused, with the command that fixes it.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from aicn.client.errors import ClientError

HOW_TO_SET = (
    "set AICN_URL and AICN_TOKEN (export AICN_URL=http://127.0.0.1:8000 AICN_TOKEN=aicn_...), "
    'or write url = "..." and token = "..." in {profile} (chmod 600)'
)


@dataclass(frozen=True)
class Connection:
    url: str  # the GraphQL endpoint, ending /graphql
    token: str

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


def profile_path() -> Path:
    explicit = os.environ.get("AICN_PROFILE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "aicn" / "profile.toml"


def read_profile(path: Path) -> dict[str, str]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if os.environ.get("AICN_PROFILE"):
            raise ClientError("PROFILE_NOT_FOUND", f"AICN_PROFILE names {path}, which does not exist") from None
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClientError(
            "PROFILE_PERMISSIONS",
            f"{path} holds a token but others may read or change it (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}",
        )
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ClientError("PROFILE_INVALID", f"{path} is not a readable TOML file: {error}") from None
    unknown = sorted(set(document) - {"url", "token"})
    if unknown:
        raise ClientError("PROFILE_INVALID", f"{path}: unknown keys {', '.join(unknown)} (a profile has url and token)")
    if not all(isinstance(value, str) for value in document.values()):
        raise ClientError("PROFILE_INVALID", f"{path}: url and token are strings")
    return {str(key): str(value) for key, value in document.items()}


def graphql_endpoint(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ClientError("BAD_URL", f"the gateway URL must start with http:// or https://, not {url!r}")
    return url if url.endswith("/graphql") else url + "/graphql"


def connection() -> Connection:
    """The gateway and token to use, or a ClientError that says how to set them."""
    path = profile_path()
    url, token = os.environ.get("AICN_URL", "").strip(), os.environ.get("AICN_TOKEN", "").strip()
    if not url or not token:
        profile = read_profile(path)
        url, token = url or profile.get("url", "").strip(), token or profile.get("token", "").strip()
    missing = [name for name, value in (("gateway URL", url), ("token", token)) if not value]
    if missing:
        raise ClientError("NOT_CONFIGURED", f"no {' and no '.join(missing)}: " + HOW_TO_SET.format(profile=path))
    return Connection(graphql_endpoint(url), token)
