"""A stand-in of the ZeroGPU scheduler's HTTP API on loopback: the four endpoints the real
`spaces` package calls (spaces/zero/client.py and api.py), answering as Hugging Face's does, and
recording every call so a test can see what reached it (the visitor's token, the lease asked,
the worker's pid).

    POST /startup-report                          the Space is up
    POST /schedule?taskId&token&durationSeconds…  a lease: granted (JSON), or refused (429 + quota)
    POST /allow?allowToken&pid                    the forked worker takes the GPU
    POST /release?allowToken&fail                 the lease is over
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


class Scheduler:
    """Grants every lease on the GPU `nvidia_uuid`, except to the tokens in `refused`, which
    have `left` seconds of quota (a free account, as the real scheduler says it)."""

    def __init__(self, nvidia_uuid: str = "GPU-standin", refused: tuple[str, ...] = (), left: int = 5):
        self.nvidia_uuid = nvidia_uuid
        self.refused = set(refused)
        self.left = left
        self.calls: list[tuple[str, dict]] = []
        self.grants: dict[str, str | None] = {}  # allow token -> the visitor's X-IP-Token (None: anonymous)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def called(self, path: str) -> list[dict]:
        with self._lock:
            return [params for called, params in self.calls if called == path]

    def _answer(self, path: str, params: dict) -> tuple[int, dict, dict | None]:
        """(status, headers, JSON body) for one call."""
        if path == "/schedule":
            if params.get("token") in self.refused:
                headers = {"X-Authenticated": "regular", "X-Approve-Result": "quota-exceeded"}
                return 429, headers, {"left": self.left, "wait": 72_000}
            with self._lock:
                allow = f"lease-{len(self.grants) + 1}"
                self.grants[allow] = params.get("token")
            body = {"idle": False, "nvidiaIndex": 0, "nvidiaUUID": self.nvidia_uuid, "allowToken": allow}
            return 200, {"X-Authenticated": "regular"}, body
        if path in ("/startup-report", "/allow", "/release"):
            return 200, {}, None
        return 404, {}, None

    def _handler(self):
        scheduler = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query))
                with scheduler._lock:
                    scheduler.calls.append((parts.path, params))
                status, headers, body = scheduler._answer(parts.path, params)
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:  # quiet
                pass

        return Handler
