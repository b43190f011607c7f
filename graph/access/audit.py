"""The audit log in the graph: every mutation is recorded, and admins read it back.

``Audited`` is a field extension that ``graph/schema.py`` puts on every Mutation root
field, so a new mutation is audited without asking. The entry is written right after
the mutation returns, in its own transaction.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types import Info

from graph.core.context import Context
from graph.core.permissions import REQUIRES
from graph.core.relay import Connection, connection_from_page
from graph.core.scalars import JSON
from resolvers.access.audit import ERROR, OK, USER_ERRORS, AuditRecord
from resolvers.access.records import AuditEntryRow
from resolvers.access.viewer import ADMIN
from resolvers.common.errors import BadRequest, CenterFault
from resolvers.common.ids import decode_cursor, int_key, page_size, to_global_id

if TYPE_CHECKING:
    from graph.access.accounts import Account

REDACTED = "[redacted]"
#: input fields whose values never reach the log: credentials, and a job's environment values
SECRET_WORDS = ("token", "secret", "password", "authorization", "credential")
NAMES_ONLY = ("environment",)
MAX_STRING = 200
MAX_ITEMS = 20


@strawberry.enum
class AuditOutcome(enum.Enum):
    OK = OK
    USER_ERRORS = USER_ERRORS
    ERROR = ERROR


@strawberry.type(description="One mutation as the audit log recorded it.")
class AuditEntry:
    id: strawberry.ID
    at: datetime
    operation: str = strawberry.field(description="The mutation's field name, e.g. submitJob.")
    input: JSON | None = strawberry.field(description="The input, shortened, with secrets and environment values left out.")
    outcome: AuditOutcome
    codes: list[str] = strawberry.field(description="userErrors codes, or the error's code.")
    request_id: str | None
    token_id: strawberry.ID | None = strawberry.field(description="The API token that made the call.")
    row: strawberry.Private[AuditEntryRow]

    @classmethod
    def from_row(cls, row: AuditEntryRow) -> AuditEntry:
        return cls(
            id=strawberry.ID(to_global_id("AuditEntry", row.id)),
            at=row.at,
            operation=row.operation,
            input=JSON(row.input) if row.input is not None else None,
            outcome=AuditOutcome(row.outcome),
            codes=list(row.codes or []),
            request_id=row.request_id,
            token_id=strawberry.ID(to_global_id("ApiToken", row.token_id)) if row.token_id is not None else None,
            row=row,
        )

    @strawberry.field(description="The account that made the call.")
    async def account(self, info: Info[Context, None]) -> Annotated[Account, strawberry.lazy("graph.access.accounts")] | None:
        if self.row.account_id is None:
            return None
        return await info.context.loaders.account.load(self.row.account_id)


@strawberry.type
class AuditQuery:
    @strawberry.field(description="Every mutation, newest first (admins only).", metadata={REQUIRES: ADMIN})
    async def audit_log(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None, account_id: strawberry.ID | None = None
    ) -> Connection[AuditEntry]:
        if not info.context.viewer.is_admin:
            raise BadRequest("the audit log is for admins", "FORBIDDEN")
        size, cursor, audit = page_size(first), decode_cursor(after), info.context.services.audit
        account_key = int_key(account_id, "Account") if account_id is not None else None
        if account_id is not None and account_key is None:
            account_key = -1  # an id of no account matches no entry
        page = await audit.page(account_key, first=size, after=cursor)

        async def count() -> int:
            return await audit.count(account_key)

        return connection_from_page(page, AuditEntry.from_row, lambda row: row.id, count)


class Audited(FieldExtension):
    """Records the mutation it wraps: who, what (input summary), when, and the outcome."""

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any) -> Any:
        context: Context = info.context
        summary = summarize(kwargs)
        try:
            result = await next_(source, info, **kwargs)
        except Exception as error:
            record = AuditRecord(info.field_name, summary, ERROR, [_error_code(error)])
            await context.services.audit.record(context.viewer, record, context.request_id)
            raise
        codes = [error.code for error in getattr(result, "user_errors", None) or []]
        record = AuditRecord(info.field_name, summary, USER_ERRORS if codes else OK, codes)
        await context.services.audit.record(context.viewer, record, context.request_id)
        return result


def audit_mutations(mutation_type: type) -> None:
    """Put ``Audited`` on every field of the Mutation root (once)."""
    for field in mutation_type.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        if not any(isinstance(extension, Audited) for extension in field.extensions):
            field.extensions.append(Audited())


def _error_code(error: Exception) -> str:
    if isinstance(error, (BadRequest, CenterFault)):
        return error.code
    return "INTERNAL"


def summarize(value: Any, key: str = "") -> Any:
    """A log-safe copy of a mutation's arguments: camelCase keys, short, no secrets."""
    lowered = key.lower()
    if any(word in lowered for word in SECRET_WORDS):
        return REDACTED if value is not None else None
    if lowered in NAMES_ONLY and value is not None:
        return sorted(str(name) for name in value)[:MAX_ITEMS] if isinstance(value, Mapping) else REDACTED
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {_camel(str(name)): summarize(item, str(name)) for name, item in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, (list, tuple)):
        return [summarize(item, key) for item in value[:MAX_ITEMS]]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "…"
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return str(value)[:MAX_STRING]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
