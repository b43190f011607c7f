"""The one kind of failure the user CLI reports: a code and a message, printed as one line."""

from __future__ import annotations


class ClientError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def line(self) -> str:
        return f"aicn: error {self.code}: {self.message}"
