"""What every mutation payload shares: `userErrors`, expected failures as data."""

from __future__ import annotations

from collections.abc import Iterable

import strawberry

from resolvers.common.errors import UserErrorData


@strawberry.type(description="An expected failure: nothing was changed. `code` is stable; `field` is the input path.")
class UserError:
    field: list[str] | None
    message: str
    code: str

    @classmethod
    def from_data(cls, error: UserErrorData) -> UserError:
        return cls(field=list(error.field) or None, message=error.message, code=error.code)


def user_errors(errors: Iterable[UserErrorData]) -> list[UserError]:
    return [UserError.from_data(error) for error in errors]
