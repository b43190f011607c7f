"""An HTTPS attempt goes to the address that passed the check, with the endpoint's name in SNI,
in Host and in the certificate check (a TLS receiver on loopback, its certificate made here)."""

from __future__ import annotations

import dataclasses
import ipaddress
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from resolvers.webhooks.destinations import Destination
from resolvers.webhooks.sender import Letter, send
from resolvers.webhooks.signing import verify

NAME = "hooks.aicn.test"  # resolves nowhere: only the pinned address can be reached


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[dict[str, Any]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={NAME}",
         "-addext", f"subjectAltName=DNS:{NAME}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    seen: dict[str, Any] = {"sni": [], "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            seen["requests"].append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def note_sni(_socket: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        seen["sni"].append(name)

    context.sni_callback = note_sni  # type: ignore[assignment]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen.update(port=server.server_address[1], cert=cert)
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


async def test_the_attempt_is_pinned_and_verified_against_the_endpoints_name(tls_receiver: dict[str, Any]) -> None:
    port = tls_receiver["port"]
    letter = Letter(f"https://{NAME}:{port}/hook", "whd_tls", "JOB_ENDED", b'{"id":"whd_tls"}', "whsec_tls-secret")
    pinned = Destination("https", NAME, port, (ipaddress.ip_address("127.0.0.1"),))
    trusting = ssl.create_default_context(cafile=str(tls_receiver["cert"]))
    async with httpx.AsyncClient(verify=trusting, trust_env=False) as client:
        result = await send(client, letter, pinned, timeout=5)
        assert result.delivered and result.status_code == 204, result
        wrong = Destination("https", "other.aicn.test", port, pinned.addresses)
        refused = await send(client, dataclasses.replace(letter, url=f"https://other.aicn.test:{port}/hook"), wrong, timeout=5)
    assert not refused.delivered and refused.status_code is None and "CERTIFICATE_VERIFY_FAILED" in (refused.error or "")
    assert tls_receiver["sni"][0] == NAME
    [(headers, body)] = tls_receiver["requests"]
    assert headers["host"] == f"{NAME}:{port}" and body == letter.body
    assert verify("whsec_tls-secret", int(headers["Aicn-Timestamp"]), body, headers["Aicn-Signature"], now=int(headers["Aicn-Timestamp"]))
