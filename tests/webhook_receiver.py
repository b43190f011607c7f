"""A webhook receiver, run as its own process: ``python -m tests.webhook_receiver PORT FOLDER``.

It checks each request's signature with the secret of its path (``FOLDER/secrets.json``:
path -> secret, written by the test once it has created the endpoint) and appends one JSON
line per request to ``FOLDER/received.jsonl``: the delivery id, whether the signature held,
the event's type and data. What it answers depends on the path (one receiver serves every
case of a test):

- ``/ok``: 200 at once;
- ``/fail/N``: 500 to the first N attempts of each delivery id, then 200;
- ``/hang-first``: the very first request is logged, then left unanswered (as if the gateway
  died before hearing the answer); every later one gets 200.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from resolvers.webhooks.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, folder: Path) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.folder = folder
        self.log = folder / "received.jsonl"
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        self.requests = 0


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        delivery_id = self.headers.get(DELIVERY_HEADER, "")
        try:
            timestamp = int(self.headers.get(TIMESTAMP_HEADER, "0"))
        except ValueError:
            timestamp = 0
        secrets = json.loads((self.server.folder / "secrets.json").read_text())
        valid = verify(secrets.get(self.path, ""), timestamp, body, self.headers.get(SIGNATURE_HEADER, ""), now=time.time())
        document = json.loads(body) if body else {}
        with self.server.lock:
            self.server.requests += 1
            first_request = self.server.requests == 1
            self.server.seen[delivery_id] += 1
            attempt = self.server.seen[delivery_id]
            line = {
                "path": self.path,
                "deliveryId": delivery_id,
                "bodyId": document.get("id"),
                "valid": valid,
                "type": document.get("type"),
                "data": document.get("data"),
                "attempt": attempt,
                "host": self.headers.get("host"),
            }
            with self.server.log.open("a") as log:
                log.write(json.dumps(line) + "\n")
        if self.path == "/hang-first" and first_request:
            time.sleep(3600)  # never answers: the gateway is killed meanwhile
            return
        status = 200
        if self.path.startswith("/fail/") and attempt <= int(self.path.rsplit("/", 1)[1]):
            status = 500
        if not valid:
            status = 401
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


def main() -> None:
    Receiver(int(sys.argv[1]), Path(sys.argv[2])).serve_forever()


if __name__ == "__main__":
    main()
