"""The shared HTTP client of the connectors, against a real HTTP server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.base import StatusQuery
from connectors.errors import CenterTimeout, CenterUnreachable, JobNotFound
from connectors.http import HttpClient, HttpFailure, StatusRule, redact
from connectors.slurm.connector import SlurmConnector

SECRET = "s3cret-token-0123456789abcdef"
HOLD_LIMIT_SECONDS = 30.0  # a held request is released by the test long before this


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrived = threading.Event()  # a request reached /api/hold
        self.release = threading.Event()  # held requests may answer now

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a held request has closed its end; nothing to report


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        token = self.headers.get("X-Token", "")
        parts = self.path.strip("/").split("/")
        if self.path == "/api/object":
            self._answer(200, b'{"ok": true, "comment": "bad byte \xff here"}')
        elif self.path == "/api/list":
            self._answer(200, b"[1, 2]")
        elif self.path == "/api/text":
            self._answer(200, b"plain words")
        elif self.path == "/api/redirect":
            self._answer(302, b"", location="/api/object")
        elif parts[:2] == ["api", "status"]:
            self._answer(int(parts[2]), json.dumps({"error": f"status {parts[2]}", "echo": token}).encode())
        elif self.path == "/api/long-error":
            # the secret straddles the 500 characters an HttpFailure keeps
            self._answer(500, ("x" * 480 + token + " and more").encode())
        elif self.path == "/api/hold":
            self.server.arrived.set()
            self.server.release.wait(HOLD_LIMIT_SECONDS)
            self._answer(200, b"{}")
        else:
            self._answer(404, b'{"error": "no such path"}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._answer(200, json.dumps({"json": body, "token": self.headers.get("X-Token")}).encode())

    def _answer(self, status: int, body: bytes, *, location: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if location is not None:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, args=(0.05,), name="http-test-server", daemon=True)
    thread.start()
    yield running
    running.release.set()
    running.shutdown()
    running.server_close()
    thread.join()


def _client(server: _Server, **options: Any) -> HttpClient:
    options.setdefault("prefix", "/api")
    options.setdefault("scrub", lambda text: redact(text, [SECRET]))
    return HttpClient("test-center", "testd", server.url, **options)


@pytest.fixture
async def client(server: _Server) -> AsyncIterator[HttpClient]:
    async with _client(server, statuses={401: StatusRule(CenterUnreachable, f"testd refused the token {SECRET}")}) as http:
        yield http


async def test_a_success_is_its_json_leniently_decoded(client: HttpClient) -> None:
    body = await client.request_object("GET", "/object")
    assert body == {"ok": True, "comment": "bad byte \ufffd here"}  # one bad byte hides nothing else
    assert await client.request("GET", "/list") == [1, 2]


@pytest.mark.parametrize(("method", "path"), [("request", "/text"), ("request_object", "/text"), ("request_object", "/list")])
async def test_a_success_that_is_not_what_was_asked_is_unreachable(client: HttpClient, method: str, path: str) -> None:
    with pytest.raises(CenterUnreachable) as caught:
        await getattr(client, method)("GET", path)
    assert str(caught.value) == f"testd answered GET {path} with something that is not JSON"
    assert caught.value.center == "test-center" and not isinstance(caught.value, HttpFailure)


async def test_the_body_and_the_headers_are_sent(client: HttpClient) -> None:
    answer = await client.request_object("POST", "/echo", json_body={"job": [1, "two"]}, headers={"X-Token": "abc"})
    assert answer == {"json": {"job": [1, "two"]}, "token": "abc"}


async def test_a_status_with_a_rule_raises_the_rules_error(server: _Server) -> None:
    rules = {404: StatusRule(JobNotFound, "no such job"), 401: StatusRule(CenterUnreachable, "credentials refused")}
    async with _client(server, statuses=rules) as http:
        with pytest.raises(JobNotFound) as not_found:
            await http.request("GET", "/status/404")
        with pytest.raises(CenterUnreachable) as refused:
            await http.request("GET", "/status/401")
    assert (not_found.value.code, not_found.value.message, not_found.value.center) == ("NOT_FOUND", "no such job", "test-center")
    assert refused.value.message == "credentials refused" and not isinstance(refused.value, HttpFailure)


@pytest.mark.parametrize("status", [400, 403, 409, 500, 503])
async def test_a_status_without_a_rule_is_an_http_failure(client: HttpClient, status: int) -> None:
    with pytest.raises(HttpFailure) as caught:
        await client.request("GET", f"/status/{status}")
    failure = caught.value
    assert isinstance(failure, CenterUnreachable) and failure.code == "CENTER_UNAVAILABLE" and failure.center == "test-center"
    assert failure.status_code == status and failure.body == {"error": f"status {status}", "echo": ""}
    assert failure.message.startswith(f"testd answered GET /status/{status} with HTTP {status}: ")


async def test_a_redirect_is_not_followed(client: HttpClient) -> None:
    with pytest.raises(HttpFailure) as caught:
        await client.request("GET", "/redirect")
    assert caught.value.status_code == 302 and caught.value.body is None and "no detail" in caught.value.message


async def test_a_center_that_does_not_answer_in_time_is_a_timeout(server: _Server) -> None:
    async with _client(server, timeout=0.2) as http:
        with pytest.raises(CenterTimeout) as caught:
            await http.request("GET", "/hold")
    assert str(caught.value) == f"testd at {server.url} did not answer GET /hold within 0.2s"
    assert caught.value.code == "CENTER_TIMEOUT" and caught.value.center == "test-center"


async def test_a_refused_connection_is_unreachable() -> None:
    with socket.socket() as bound:  # bound but not listening: every connection is refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        async with HttpClient("test-center", "testd", url, timeout=5) as http:
            with pytest.raises(CenterUnreachable) as caught:
                await http.request("GET", "/anything")
    assert str(caught.value).startswith(f"cannot reach testd at {url}: ConnectError: ")
    assert caught.value.code == "CENTER_UNAVAILABLE" and not isinstance(caught.value, HttpFailure)


async def test_no_secret_reaches_a_message(client: HttpClient) -> None:
    headers = {"X-Token": SECRET}
    caught: list[BaseException] = []
    for path in ("/status/500", "/long-error", "/status/401"):
        with pytest.raises(CenterUnreachable) as error:
            await client.request("GET", path, headers=headers)
        caught.append(error.value)
    echoed, cut = caught[0], caught[1]
    assert isinstance(echoed, HttpFailure) and echoed.body["echo"] == SECRET  # the body is the center's, as it sent it
    assert isinstance(cut, HttpFailure) and cut.text.endswith("<hidden> and more") and "s3cret" not in cut.text
    assert str(caught[2]) == "testd refused the token <hidden>"
    # credentials in the URL are the same secret, in a message about the transport
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        url = f"http://aicn:{SECRET}@127.0.0.1:{bound.getsockname()[1]}"
        async with HttpClient("test-center", "testd", url, scrub=lambda text: redact(text, [SECRET])) as http:
            with pytest.raises(CenterUnreachable) as refused:
                await http.request("GET", "/x", headers=headers)
        caught.append(refused.value)
    assert str(refused.value).startswith("cannot reach testd at http://aicn:<hidden>@127.0.0.1:")
    for error in caught:
        for shown in (str(error), repr(error), getattr(error, "text", "")):
            assert SECRET not in shown
    assert SECRET not in repr(client)


def test_redact_cuts_the_longest_secret_first() -> None:
    assert redact("a abc b", ["ab", "abc", ""]) == "a <hidden> b"
    assert redact("keep me", []) == "keep me"
    assert redact("x token y", ["token"], "<token>") == "x <token> y"


async def test_at_most_max_concurrent_requests_are_in_flight(server: _Server) -> None:
    async with _client(server, max_concurrent=1) as http:
        held = asyncio.create_task(http.request("GET", "/hold"))
        assert await asyncio.to_thread(server.arrived.wait, HOLD_LIMIT_SECONDS)
        waiting = asyncio.create_task(http.request_object("GET", "/object"))
        # a request that never starts cannot be observed starting: give it ample time to show it does not
        done, _ = await asyncio.wait({waiting}, timeout=0.5)
        assert not done
        server.release.set()
        assert await held == {} and (await waiting)["ok"] is True


async def test_slurm_maps_its_statuses_through_the_client(server: _Server, tmp_path: Path) -> None:
    """A server that is not slurmrestd v0.0.38 answers 404: the connector says so."""
    slurm = SlurmConnector("not-slurm", server.url, "root", token=SECRET, output_dir=tmp_path)
    await slurm.start()
    try:
        with pytest.raises(CenterUnreachable) as caught:
            await slurm.status([StatusQuery("7")])
    finally:
        await slurm.close()
    assert str(caught.value) == f"slurmrestd at {server.url} does not serve /slurm/v0.0.38 (HTTP 404)"
