"""The token usage an OpenAI-compatible server reports: ``usage`` in a JSON answer, or in the
last chunk of a server-sent event stream (``data: {...}`` lines, ended by ``data: [DONE]``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: an event line longer than this is not scanned for usage (it is still relayed whole)
MAX_EVENT_LINE = 1_048_576


@dataclass(frozen=True)
class TokenUsage:
    prompt: int
    completion: int


def usage_in(document: Any) -> TokenUsage | None:
    """``usage`` of an answer: prompt_tokens and completion_tokens (embeddings report only prompt tokens)."""
    usage = document.get("usage") if isinstance(document, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if not prompt and not completion:
        prompt = _count(usage.get("total_tokens"))  # a server that reports only the total
    return TokenUsage(prompt, completion) if prompt or completion else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage_of_body(body: bytes) -> TokenUsage | None:
    try:
        return usage_in(json.loads(body))
    except ValueError:
        return None


class EventScanner:
    """Fed the stream's bytes as they pass; ``usage`` is the last usage a ``data:`` line carried."""

    def __init__(self) -> None:
        self.usage: TokenUsage | None = None
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_EVENT_LINE:
            self._partial = b""
        for line in lines:
            self._line(line.rstrip(b"\r"))

    def close(self) -> None:
        if self._partial:
            self._line(self._partial.rstrip(b"\r"))
            self._partial = b""

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:") or b'"usage"' not in line:
            return
        found = usage_of_body(line[5:].strip())
        if found is not None:
            self.usage = found
