"""A local server that speaks the Internet Archive availability API's JSON (never the real archive)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


class Wayback:
    """``GET /wayback/available?url=…``: the copy registered for that URL, or an empty answer.

    ``script`` holds statuses to answer before behaving (429 with ``retry_after``, 500, …).
    """

    def __init__(self, address: str = "127.0.0.30") -> None:
        self.copies: dict[str, tuple[str, str]] = {}  # url -> (copy URL, timestamp)
        self.requests: list[dict[str, str]] = []
        self.times: list[float] = []
        self.script: list[int] = []
        self.retry_after = "1"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                params = dict(parse_qsl(urlsplit(self.path).query))
                owner.requests.append(params)
                owner.times.append(time.monotonic())
                if owner.script:
                    status = owner.script.pop(0)
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", owner.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                copy = owner.copies.get(params.get("url", ""))
                snapshots = {}
                if copy is not None:
                    snapshots["closest"] = {
                        "available": True,
                        "url": copy[0],
                        "timestamp": copy[1],
                        "status": "200",
                    }
                body = json.dumps({"url": params.get("url"), "archived_snapshots": snapshots}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((address, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The availability endpoint URL to configure as ``health.archive.endpoint``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/wayback/available"

    def __enter__(self) -> Wayback:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
