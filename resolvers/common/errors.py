"""Failures resolvers report, as plain data the graph layer turns into GraphQL errors."""

from __future__ import annotations

from dataclasses import dataclass, field


class CenterFault(Exception):
    """A center could not answer: its data is missing from the response, the rest is not."""

    def __init__(self, code: str, center_id: str, center_name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.center_id = center_id
        self.center_name = center_name
        self.message = message


class BadRequest(Exception):
    """The caller asked for something malformed (a bad cursor, a page too large, ...)."""

    def __init__(self, message: str, code: str = "BAD_USER_INPUT") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class UserErrorData:
    """An expected failure of a mutation: shown to the user, nothing was changed."""

    message: str
    code: str
    field: tuple[str, ...] = field(default_factory=tuple)
