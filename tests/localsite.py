"""A real HTTP(S) test server on several loopback addresses, run in a background thread.

One aiohttp application is served on ``127.0.0.x`` addresses (distinct hosts for the checker) and,
optionally, over TLS with a ``trustme`` certificate. Tests declare routes per path::

    site.route("/a", head=405, get=200)
    site.route("/r", status=301, headers={"Location": site.url("/a", host_index=1)})
    site.route("/flaky", status=[503, 503, 200], headers={"Retry-After": "0"})

A status may be a list: each request takes the next one, the last repeats (per method). The server counts
requests per (host index, method, path), keeps a timed log, and tracks the most requests in flight at once
per host. Everything is real sockets; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from pipeline.config import Settings
from pipeline.configfile import parse_settings

StatusSpec = int | Sequence[int]


@dataclass
class Route:
    """What one path answers."""

    head: list[int]
    get: list[int]
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    etag: str | None = None  # answer 304 (no body) to a request whose If-None-Match names it
    served: Counter[str] = field(default_factory=Counter)

    def next_status(self, method: str) -> int:
        statuses = self.head if method == "HEAD" else self.get
        index = self.served[method]
        self.served[method] += 1
        return statuses[min(index, len(statuses) - 1)]


@dataclass(frozen=True)
class Hit:
    """One request the server received."""

    host_index: int
    method: str
    path: str
    started: float  # time.monotonic()
    finished: float
    headers: dict[str, str]


class LocalSite:
    """Serves declared routes on ``hosts`` loopback addresses (plus TLS ones when ``tls`` is given)."""

    def __init__(self, hosts: int = 3, *, first_address: int = 10, tls: ssl.SSLContext | None = None) -> None:
        self.addresses = [f"127.0.0.{first_address + i}" for i in range(hosts)]
        self.scheme = "https" if tls else "http"
        self._tls = tls
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self.hits: list[Hit] = []  # completed requests, with timings
        self._arrivals: list[tuple[int, str, str]] = []  # (host index, method, path), counted on arrival
        self._inflight: Counter[int] = Counter()
        self.max_inflight: Counter[int] = Counter()
        self.body_bytes: Counter[str] = Counter()  # body bytes sent, per path
        self._fallback: Route | None = None  # what unknown paths answer (default: 404 "not found")
        self.ports: list[int] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    # ---- declaring routes -------------------------------------------------------------------------
    def route(
        self,
        path: str,
        status: StatusSpec = 200,
        *,
        head: StatusSpec | None = None,
        get: StatusSpec | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        delay: float = 0.0,
        etag: str | None = None,
    ) -> None:
        """Declare what ``path`` answers on every host (HEAD and GET default to ``status``)."""

        def listed(spec: StatusSpec | None) -> list[int]:
            spec = status if spec is None else spec
            return [spec] if isinstance(spec, int) else list(spec)

        self._routes[path] = Route(listed(head), listed(get), dict(headers or {}), body, delay, etag)

    def fallback(self, status: int, *, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        """Declare what every undeclared path answers (a site with a catch-all or custom 404 page)."""
        self._fallback = Route([status], [status], dict(headers or {}), body)

    def url(self, path: str, host_index: int = 0) -> str:
        """The absolute URL of ``path`` on one of the hosts."""
        return f"{self.scheme}://{self.addresses[host_index]}:{self.ports[host_index]}{path}"

    def count(self, path: str, method: str | None = None, host_index: int | None = None) -> int:
        """Requests received for ``path`` (optionally only one method or one host)."""
        with self._lock:
            return sum(
                1
                for index, verb, seen in self._arrivals
                if seen == path
                and (method is None or verb == method)
                and (host_index is None or index == host_index)
            )

    def reset(self) -> None:
        """Forget routes, counts and the log (between tests)."""
        with self._lock:
            self._routes.clear()
            self.hits.clear()
            self._arrivals.clear()
            self._inflight.clear()
            self.max_inflight.clear()
            self.body_bytes.clear()
            self._fallback = None

    # ---- serving ----------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host_index = self.addresses.index(request.transport.get_extra_info("sockname")[0])  # type: ignore[union-attr]
        started = time.monotonic()
        with self._lock:
            self._arrivals.append((host_index, request.method, request.path))
            self._inflight[host_index] += 1
            self.max_inflight[host_index] = max(self.max_inflight[host_index], self._inflight[host_index])
        try:
            route = self._routes.get(request.path) or self._fallback
            if route is None:
                status, headers, body, delay = 404, {}, b"not found", 0.0
            else:
                with self._lock:
                    status = route.next_status(request.method)
                headers, body, delay = route.headers, route.body, route.delay
                if route.etag is not None:
                    headers = {**headers, "ETag": route.etag}
                    if request.headers.get("If-None-Match") == route.etag:
                        status, body = 304, b""
            if delay:
                await asyncio.sleep(delay)
            response = web.Response(status=status, headers=headers)
            if request.method != "HEAD" and body:
                response.body = body
                with self._lock:
                    self.body_bytes[request.path] += len(body)
            return response
        finally:
            with self._lock:
                self._inflight[host_index] -= 1
                self.hits.append(
                    Hit(
                        host_index,
                        request.method,
                        request.path,
                        started,
                        time.monotonic(),
                        dict(request.headers),
                    )
                )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        for address in self.addresses:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, 0))
            self.ports.append(sock.getsockname()[1])
            await web.SockSite(self._runner, sock, ssl_context=self._tls, backlog=1024).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> LocalSite:
        """Start serving in a background thread; returns self."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextmanager
def serving(
    hosts: int = 3, *, first_address: int = 10, tls: ssl.SSLContext | None = None
) -> Iterator[LocalSite]:
    """Context manager around ``LocalSite.start``/``stop``."""
    site = LocalSite(hosts, first_address=first_address, tls=tls).start()
    try:
        yield site
    finally:
        site.stop()


def tls_material(directory: Path, addresses: Sequence[str]) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for ``addresses`` (plus ``localhost``) and the CA file a client must trust."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(*addresses, "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


def closed_port(address: str = "127.0.0.1") -> int:
    """A port on ``address`` with nothing listening (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
    return port


def make_settings(tmp: Path, ca: Path | None = None, **sections: dict[str, object]) -> Settings:
    """Settings for tests: loopback allowed, short timeouts, tiny backoff; ``sections`` override."""
    data: dict[str, dict[str, object]] = {
        "http": {
            "allow_networks": ["127.0.0.0/8"],
            "connect_timeout": 2.0,
            "read_timeout": 2.0,
            "total_timeout": 5.0,
            "ca_bundle": str(ca) if ca else None,
        },
        "retry": {"attempts": 3, "backoff_initial": 0.01, "backoff_max": 0.05, "retry_after_max": 2.0},
        "state": {"dir": str(tmp / "state")},
        "reports": {"dir": str(tmp / "reports")},
        # Never the real archive from a test: archive tests point the endpoint at a local server.
        "health": {"archive": {"enabled": False}},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_settings(data, "test settings")


def one_article_per_url(root: Path, urls: Sequence[str]) -> Path:
    """``root/corpus``: one article per URL, naming it in ``ampWebUrl``; the corpus folder."""
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    for n, url in enumerate(urls):
        (corpus / f"a{n:03d}.md").write_text(f'---\ntitle: "A {n}"\nampWebUrl: "{url}"\n---\nBody\n')
    return corpus
