"""A webhook receiver as a hoster would write one, on http.server in a thread of the test.

It knows only what docs/api.md tells a hoster: the secret, the ``Postamt-Signature`` header
(``t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``) and the replay window. It
imports nothing from Postamt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE = 300  # seconds: the replay window the docs recommend


def verify(secret: str, body: bytes, header: str, now: float | None = None) -> bool:
    """The check of docs/api.md: parse, recompute, compare in constant time, refuse old."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > TOLERANCE:
        return False
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next of ``answers`` (then 200), after ``delay`` seconds;
    ``hang`` holds requests until it is set. ``received`` keeps what came, verified or not."""

    secret: str = ""
    answers: list[int] = field(default_factory=list)
    delay: float = 0
    hang: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/postamt?x=1"

    @property
    def verified(self) -> list[dict[str, Any]]:
        return [r.event for r in self.received if r.verified]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = verify(receiver.secret, body, self.headers.get("Postamt-Signature", ""))
                receiver.received.append(Received(dict(self.headers), body, ok))
                receiver.arrived.set()
                if receiver.hang is not None:
                    receiver.hang.wait(30)
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = 400 if not ok else (receiver.answers.pop(0) if receiver.answers else 200)
                answer = b'{"ok": true}' if status < 300 else b"try again later"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.hang is not None:
            self.hang.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
