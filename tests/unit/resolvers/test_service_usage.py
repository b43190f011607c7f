"""The token usage an OpenAI-compatible answer reports, found in a JSON body or in a stream of
server-sent events however its chunks are cut, and its price to the millionth."""

from __future__ import annotations

import json
from decimal import Decimal

from resolvers.services.tokens import token_charge
from resolvers.services.usage import EventScanner, TokenUsage, usage_of_body


def event(document: object) -> bytes:
    return b"data: " + json.dumps(document).encode() + b"\n\n"


def test_a_json_answer_reports_prompt_and_completion_tokens() -> None:
    body = json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}).encode()
    assert usage_of_body(body) == TokenUsage(5, 4)
    assert usage_of_body(b'{"data": [], "usage": {"prompt_tokens": 6, "total_tokens": 6}}') == TokenUsage(6, 0)
    assert usage_of_body(b'{"usage": {"total_tokens": 7}}') == TokenUsage(7, 0)


def test_what_is_no_usage_counts_nothing() -> None:
    for body in (b"not json", b"[1, 2]", b'{"usage": null}', b'{"usage": {"prompt_tokens": -3}}', b'{"usage": {"prompt_tokens": true}}'):
        assert usage_of_body(body) is None, body
    assert usage_of_body(b'{"usage": {"prompt_tokens": "5", "completion_tokens": 2.5}}') is None


def test_the_last_usage_of_a_stream_counts_wherever_its_chunks_are_cut() -> None:
    stream = b"".join(
        [
            event({"choices": [{"delta": {"content": "a"}}], "usage": None}),
            event({"choices": [{"delta": {"content": "b"}}], "usage": None}),
            event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
            b"data: [DONE]\n\n",
        ]
    )
    for size in (1, 2, 7, 64, len(stream)):
        scanner = EventScanner()
        for start in range(0, len(stream), size):
            scanner.feed(stream[start : start + size])
        scanner.close()
        assert scanner.usage == TokenUsage(3, 2), size


def test_a_stream_without_usage_or_with_crlf_lines() -> None:
    scanner = EventScanner()
    scanner.feed(event({"choices": [{"delta": {"content": "a"}}]}) + b"data: [DONE]\n\n")
    scanner.close()
    assert scanner.usage is None
    scanner = EventScanner()
    scanner.feed(b'data: {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}\r\n\r\n')
    scanner.close()
    assert scanner.usage == TokenUsage(1, 1)
    scanner = EventScanner()
    scanner.feed(b'data: {"usage": {"prompt_tokens": 2, "completion_tokens": 0}}')  # no newline before the end
    scanner.close()
    assert scanner.usage == TokenUsage(2, 0)


def test_tokens_are_priced_per_million_to_the_millionth() -> None:
    assert token_charge(1_000_000, Decimal("2.50")) == Decimal("2.500000")
    assert token_charge(43, Decimal("2.50")) == Decimal("0.000108")  # 0.0001075 rounds half up
    assert token_charge(0, Decimal("9.99")) == Decimal("0.000000")
