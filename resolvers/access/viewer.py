"""Who is asking: the account every read and write is scoped to, and what the caller may do."""

from __future__ import annotations

from dataclasses import dataclass, field

READ = "read"
SUBMIT = "submit"
ADMIN = "admin"
SCOPES: tuple[str, ...] = (READ, SUBMIT, ADMIN)
#: what a caller without an explicit scope list may do (the embedded default account, tests)
MEMBER_SCOPES = frozenset({READ, SUBMIT})


@dataclass(frozen=True)
class Viewer:
    account_id: int
    is_admin: bool = False
    token_id: int | None = None
    scopes: frozenset[str] = field(default=MEMBER_SCOPES)
    authenticated: bool = True

    def __post_init__(self) -> None:
        # `admin` is both a scope and the "sees every account" switch: keep the two in step
        if self.is_admin and ADMIN not in self.scopes:
            object.__setattr__(self, "scopes", self.scopes | {ADMIN})
        elif ADMIN in self.scopes and not self.is_admin:
            object.__setattr__(self, "is_admin", True)

    @classmethod
    def for_token(cls, account_id: int, token_id: int, scopes: frozenset[str]) -> Viewer:
        return cls(account_id=account_id, token_id=token_id, scopes=frozenset(scopes), is_admin=ADMIN in scopes)

    @property
    def scope(self) -> int | None:
        """The owner filter for queries: None (everything) for admins."""
        return None if self.is_admin else self.account_id

    def can(self, scope: str) -> bool:
        return self.authenticated and scope in self.scopes


#: before authentication (a WebSocket before `connection_init`, a request without a token)
ANONYMOUS = Viewer(account_id=0, scopes=frozenset(), authenticated=False)
