"""A local HTTP server standing in for Cronitor, healthchecks.io and Sentry.

It records every request and answers per ``mode``: ``ok`` (200), ``error``
(500) or ``sleep`` (answers nothing for 30 s, or until stopped). Sentry
envelopes (possibly gzip-compressed) are decoded by :meth:`Recorder.envelope_items`.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SLEEP_SECONDS = 30.0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes


class Recorder:
    """An HTTP server on 127.0.0.1 (free port) in a thread, recording requests."""

    def __init__(self, mode: str = "ok") -> None:
        assert mode in ("ok", "error", "sleep"), mode
        self.mode = mode
        self.requests: list[Request] = []
        self.released = threading.Event()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                recorder.requests.append(Request(self.command, url.path, query, body))
                if recorder.mode == "sleep":
                    recorder.released.wait(SLEEP_SECONDS)
                status = 500 if recorder.mode == "error" else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the client gave up waiting (sleep mode)

            do_GET = do_POST = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def dsn(self) -> str:
        """A Sentry DSN whose envelopes come here (``/api/1/envelope/``)."""
        return f"http://public@127.0.0.1:{self.port}/1"

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def envelope_items(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every (item header, payload) of the Sentry envelopes received, in order."""
        items = []
        for request in self.requests:
            if request.path != "/api/1/envelope/":
                continue
            lines = request.body.split(b"\n")[1:]  # the first line is the envelope header
            while len(lines) >= 2 and lines[0].strip():
                header = json.loads(lines[0])
                length = header.get("length")
                if length is None:
                    payload, lines = lines[1], lines[2:]
                else:
                    rest = b"\n".join(lines[1:])
                    payload, lines = rest[:length], rest[length + 1 :].split(b"\n")
                try:
                    items.append((header, json.loads(payload)))
                except ValueError:
                    items.append((header, {"raw": payload}))  # an attachment
        return items

    def items_of(self, item_type: str) -> list[dict[str, Any]]:
        return [body for header, body in self.envelope_items() if header.get("type") == item_type]


def refused_url() -> str:
    """The URL of a port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Dropper:
    """A port that accepts connections and closes them at once, counting them."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def stop(self) -> None:
        self._sock.close()
