"""Stand-ins for the management APIs of healthchecks.io (v3), Cronitor and Sentry Crons, with state.

One local HTTP server answers all three under ``/hc``, ``/cronitor`` and
``/sentry``, checks each one's credentials, keeps their monitors in memory
and counts the writes, so a test can tell a second ``cron_monitors sync``
changed nothing.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HC_KEY, CRONITOR_KEY, SENTRY_TOKEN, SENTRY_ORG = "hc-key", "cronitor-key", "sentry-token", "acme"


class MonitorApis:
    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []  # healthchecks.io
        self.monitors: dict[str, dict[str, Any]] = {}  # Cronitor, by key
        self.crons: dict[str, dict[str, Any]] = {}  # Sentry, by slug
        self.writes: list[str] = []
        self.lock = threading.Lock()
        apis = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _send(self, status: int, body: Any = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                with apis.lock:
                    status, body = apis.answer(method, self.path, dict(self.headers), self._body())
                self._send(status, body)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add_check(self, check_id: str, **fields: Any) -> None:
        self.checks.append(self._check(check_id, fields))

    def _check(self, check_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {"name": "", "slug": "", "schedule": "* * * * *", "tz": "UTC", "grace": 3600, **fields,
                "ping_url": f"https://hc-ping.com/{check_id}", "update_url": f"{self.url}/hc/checks/{check_id}"}

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if path.startswith("/hc/"):
            if headers.get("X-Api-Key") != HC_KEY:
                return 401, {"error": "wrong api key"}
            if (method, path) == ("GET", "/hc/checks/"):
                return 200, {"checks": self.checks}
            if (method, path) == ("POST", "/hc/checks/"):
                self.writes.append(f"hc create {body['slug']}")
                self.checks.append(self._check(str(uuid.uuid4()), {k: v for k, v in body.items() if k != "unique"}))
                return 201, self.checks[-1]
            found = re.fullmatch(r"/hc/checks/([-0-9a-f]+)", path)
            check = next((c for c in self.checks if found and c["ping_url"].endswith(found.group(1))), None)
            if method == "POST" and check is not None:
                self.writes.append(f"hc update {found.group(1) if found else ''}")
                check.update(body)
                return 200, check
        elif path.startswith("/cronitor/"):
            expected = "Basic " + base64.b64encode(f"{CRONITOR_KEY}:".encode()).decode()
            if headers.get("Authorization") != expected:
                return 403, {"error": "invalid api key"}
            found = re.fullmatch(r"/cronitor/monitors/([\w-]+)", path)
            if method == "GET" and found:
                monitor = self.monitors.get(found.group(1))
                return (200, monitor) if monitor else (404, {"error": "not found"})
            if (method, path) == ("PUT", "/cronitor/monitors"):
                for monitor in body:
                    self.writes.append(f"cronitor put {monitor['key']}")
                    self.monitors[monitor["key"]] = {**self.monitors.get(monitor["key"], {}), **monitor}
                return 200, {"monitors": body}
        elif path.startswith(f"/sentry/organizations/{SENTRY_ORG}/monitors/"):
            if headers.get("Authorization") != f"Bearer {SENTRY_TOKEN}":
                return 401, {"detail": "Invalid token"}
            found = re.fullmatch(rf"/sentry/organizations/{SENTRY_ORG}/monitors/([\w-]+)/", path)
            if method == "GET" and found:
                monitor = self.crons.get(found.group(1))
                return (200, monitor) if monitor else (404, {"detail": "The requested resource does not exist"})
            if method == "POST" and not found:
                self.writes.append(f"sentry create {body['slug']}")
                self.crons[body["slug"]] = body
                return 201, body
            if method == "PUT" and found and found.group(1) in self.crons:
                self.writes.append(f"sentry update {found.group(1)}")
                self.crons[found.group(1)].update(body)
                return 200, self.crons[found.group(1)]
        return 404, {"error": f"no route {method} {path}"}

    def settings(self) -> dict[str, Any]:
        return {
            "CRONMAN_HEALTHCHECKS_ENABLED": True, "CRONMAN_HEALTHCHECKS_API_URL": f"{self.url}/hc",
            "CRONMAN_HEALTHCHECKS_API_KEY": HC_KEY,
            "CRONMAN_CRONITOR_ENABLED": True, "CRONMAN_CRONITOR_API_URL": f"{self.url}/cronitor",
            "CRONMAN_CRONITOR_API_KEY": CRONITOR_KEY,
            "CRONMAN_SENTRY_ENABLED": True, "CRONMAN_SENTRY_API_URL": f"{self.url}/sentry",
            "CRONMAN_SENTRY_API_TOKEN": SENTRY_TOKEN, "CRONMAN_SENTRY_ORG": SENTRY_ORG,
            "CRONMAN_SENTRY_PROJECT": "backend",
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
