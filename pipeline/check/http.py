"""The one place the checker's HTTP is built: limits, timeouts, address guard, size caps.

Reads settings ``http.*`` (user agent, concurrency limits, timeouts, header and body caps, TLS verification,
extra CA bundle, ``allow_networks``). Returns the transport (``build_transport``): an
``httpx_aiohttp.AiohttpTransport`` over one aiohttp connector, chosen by measurement (``tools.bench``; several
times faster than httpx's default transport for many hosts at once), and ``Sender``, which sends one
request straight to it with the configured headers and timeouts: it never follows a redirect and never
keeps a cookie (no ``httpx.AsyncClient``: skipping ``AsyncClient.send`` measured ~20% faster).

The address guard (SSRF) lives in two places so that no connection escapes it:

- ``GuardedResolver`` is the connector's resolver: every connection of every redirect hop to a *name*
  resolves through it, and addresses outside the allowed set are dropped (none left: ``AddressRefused``).
- aiohttp never resolves an IP *literal*, so ``AddressGuard.refusal(host)`` is called by the checker on
  the URL and on every redirect hop before a request is sent.

Also here, because they are about the wire and not about verdicts: ``read_capped`` (streams a body with
its own gzip/deflate decoding so a compression bomb never expands past the cap) and ``classify_error``
(turns any transport exception into a ``TransportFailure`` value).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import Connection
from aiohttp.resolver import DefaultResolver
from httpx_aiohttp import AiohttpTransport

from pipeline.errors import AddressRefused
from pipeline.links import ends_in_number, whatwg_ipv4

if TYPE_CHECKING:  # the settings are read, never built, here: the check's process loads no pydantic
    from pipeline.config import HttpSettings, Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ACCEPT_ENCODING = "gzip, deflate"  # only what read_capped can decode under a cap


class AddressGuard:
    """Decides whether an IP address may be contacted: public addresses, plus ``allow_networks``."""

    def __init__(self, allow_networks: Iterable[str] = ()) -> None:
        self._allowed: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(net, strict=False) for net in allow_networks
        )

    def why_refused(self, ip: str | IPAddress) -> str | None:
        """None when the address may be contacted, else what kind of address it is."""
        try:
            addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        except ValueError:
            return f"{ip!r} is not an IP address"
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self._allowed):
            return None
        # Most specific first: ipaddress also calls link-local, reserved and 0.0.0.0/8 "private".
        for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
            if getattr(addr, f"is_{kind}"):
                return f"{addr} is {kind.replace('_', '-')}"
        if not addr.is_global:
            return f"{addr} is not a public address"
        return None

    def is_allowed(self, ip: str | IPAddress) -> bool:
        """True when the address is public or inside an allowed network."""
        return self.why_refused(ip) is None

    def refusal(self, host: str) -> str | None:
        """For a URL's host: the refusal reason when it is a literal IP the guard refuses, else None.

        Names are checked at connection time by ``GuardedResolver``.
        """
        literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if ends_in_number(literal):
            # A browser reads 2130706433, 127.1 or 0x7f000001 as an IPv4 address; so does the resolver.
            dotted = whatwg_ipv4(literal)
            if dotted is None:
                return f"address guard: {host!r} is not a valid IPv4 address"
            literal = dotted
        try:
            addr = ipaddress.ip_address(literal)
        except ValueError:
            return None
        reason = self.why_refused(addr)
        return f"address guard: {reason}" if reason else None


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that keeps only the addresses ``AddressGuard`` allows."""

    def __init__(self, guard: AddressGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [item for item in found if self._guard.is_allowed(item["host"])]
        if not kept:
            reasons = sorted({self._guard.why_refused(item["host"]) or "" for item in found})
            raise AddressRefused(f"address guard: {host} resolves to " + "; ".join(reasons))
        return kept

    async def close(self) -> None:
        await self._inner.close()


_CONTEXT_TTL_S = 3600.0  # a daemon's later nights read the system's CA store again
_contexts: dict[tuple[str | None, tuple[int, int, int], bool], tuple[float, ssl.SSLContext]] = {}


def _ssl_context(http: HttpSettings) -> ssl.SSLContext:
    """The TLS context of these settings, made once an hour per process: loading the system's CA store
    costs about 60 ms of CPU, and a Celery worker builds a transport for every shard it checks."""
    bundle = http.ca_bundle
    # A bundle replaced in place may keep its mtime (cp -p, rsync -t, images with fixed mtimes).
    found = bundle.stat() if bundle else None
    stamp = (found.st_mtime_ns, found.st_size, found.st_ino) if found else (0, 0, 0)
    key = (str(bundle) if bundle else None, stamp, http.verify_tls)
    made = _contexts.get(key)
    if made is not None and time.monotonic() - made[0] < _CONTEXT_TTL_S:
        return made[1]
    context = _default_context() if bundle is None and http.verify_tls else ssl.create_default_context()
    if bundle is not None:
        context.load_verify_locations(cafile=str(bundle))
    if not http.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if len(_contexts) > 16:  # settings that came and went (tests, a daemon's reloaded config)
        _contexts.clear()
    _contexts[key] = (time.monotonic(), context)
    return context


_IMPORTED = time.monotonic()  # aiohttp was imported just before: its own TLS contexts are this old at most


def _default_context() -> ssl.SSLContext:
    """A default context (the system's CA store, hostnames checked): aiohttp's own verified one while it is
    fresh, else a new one. aiohttp reads the store for it when imported; reading it again cost the check's
    process 20 ms before its first request. Never changed here, so sharing it changes nothing."""
    made = getattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", None)
    if isinstance(made, ssl.SSLContext) and time.monotonic() - _IMPORTED < _CONTEXT_TTL_S:
        return made
    return ssl.create_default_context()


def prepare_tls(http: HttpSettings) -> None:
    """Make this process's TLS context for ``http`` now, before a check needs it (a Celery pool process
    when it starts, so that its first shard does not wait for the CA store)."""
    _ssl_context(http)


def default_headers(http: HttpSettings) -> dict[str, str]:
    """Headers every request carries."""
    return {"User-Agent": http.agent, "Accept-Encoding": ACCEPT_ENCODING, "Accept": "*/*"}


def timeouts(http: HttpSettings) -> httpx.Timeout:
    """Per-phase timeouts; the whole request (redirects included) is bounded by the caller."""
    return httpx.Timeout(
        connect=http.connect_timeout, read=http.read_timeout, write=http.read_timeout, pool=http.total_timeout
    )


class _ReasonResponse(aiohttp.ClientResponse):
    """aiohttp's response with a reason phrase that can be encoded again.

    aiohttp decodes the status line with ``surrogateescape``, and httpx_aiohttp calls ``reason.encode()``:
    a byte that is not UTF-8 (``404 Not\\xff Found``) raised UnicodeEncodeError and the status was lost.
    The byte is kept as the visible text ``\\xff`` instead.
    """

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        started = await super().start(connection)
        if self.reason:
            self.reason = self.reason.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return started


def build_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The httpx transport: aiohttp underneath, guarded resolver, connection limits, header caps.

    Safe to call outside a running loop: the aiohttp session is created at the first request.
    """
    http = settings.http
    guard = AddressGuard(http.allow_networks)
    context = _ssl_context(http)

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=http.max_concurrency,
            # The host queue enforces each host's limit; a per-host override may exceed the default.
            limit_per_host=max(
                [http.per_host_concurrency, *(h.per_host_concurrency or 0 for h in http.hosts.values())]
            ),
            resolver=GuardedResolver(guard),
            ssl=context,
            ttl_dns_cache=300,
        )
        # aiohttp bounds each header line and field, not the whole block; both get the configured cap.
        return aiohttp.ClientSession(
            connector=connector,
            max_line_size=http.max_header_bytes,
            max_field_size=http.max_header_bytes,
            max_headers=256,
            auto_decompress=False,
            # A check asks what every visitor would get: no cookie is kept from one answer for the next
            # request (aiohttp's own jar keeps them for host names, refusing only addresses').
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            response_class=_ReasonResponse,
        )

    return AiohttpTransport(client=session, verify=context)


class Sender:
    """Sends one request straight to the transport: the configured headers (``headers_for``, which a caller
    may copy and extend) and per-phase timeouts; redirects, cookies and auth are the caller's business."""

    def __init__(self, transport: httpx.AsyncBaseTransport, http: HttpSettings) -> None:
        self._transport = transport
        self._headers = httpx.Headers(default_headers(http))
        self._extensions = {"timeout": timeouts(http).as_dict()}
        self._by_netloc: dict[bytes, httpx.Headers] = {}  # the headers with each host's Host header first

    def headers_for(self, url: httpx.URL) -> httpx.Headers:
        """The headers of a request to ``url``: its Host header first, as httpx.Request would put it, then
        the configured ones; made once per host, not for every request (never change them: copy)."""
        headers = self._by_netloc.get(url.netloc)
        if headers is None:
            if len(self._by_netloc) >= _HOSTS_KEPT:
                self._by_netloc.clear()
            headers = self._by_netloc[url.netloc] = httpx.Headers([(b"Host", url.netloc), *self._headers.raw])
        return headers

    async def send(
        self, method: str, url: httpx.URL | str, headers: httpx.Headers | None = None
    ) -> httpx.Response:
        """``method`` on ``url`` with ``headers`` (Host included), by default ``headers_for(url)``."""
        if isinstance(url, str):
            url = httpx.URL(url)
        # A request given its (empty) body as a stream skips httpx's making of a body and of the headers
        # that go with it, two thirds of the request's making (the Host header, the only one it adds here,
        # is in ``headers_for``); read, so that the transport sends no body rather than a chunked empty one.
        request = httpx.Request(
            method,
            url,
            headers=self.headers_for(url) if headers is None else headers,
            extensions=self._extensions,
            stream=_NO_BODY,
        )
        request.read()
        response = await self._transport.handle_async_request(request)
        response.request = request  # as AsyncClient does; not every transport sets it
        return response


_NO_BODY = httpx.ByteStream(b"")
_HOSTS_KEPT = 1024  # hosts whose headers a Sender keeps made (about 600 bytes each)


async def read_capped(
    response: httpx.Response, limit: int, *, stop_at_head_end: bool | Callable[[bytes], bool] = False
) -> bytes:
    """Up to ``limit`` decoded bytes of a streamed body; decoding never expands past ``limit``.

    With ``stop_at_head_end``, reading stops once ``</head>`` has been seen (the metadata is all above it);
    when it is a function, only if that function says the bytes read so far are enough (else reading goes
    on to ``limit``, for the body's fallbacks).
    """
    encoding = response.headers.get("content-encoding", "").strip().lower()
    decoder: Any = None
    if encoding in ("gzip", "x-gzip", "deflate"):
        # wbits 47 = zlib or gzip header, auto-detected; raw deflate is retried below.
        decoder = zlib.decompressobj(47)
    out = bytearray()
    async for chunk in response.aiter_raw():
        if decoder is not None:
            try:
                data = decoder.decompress(chunk, limit - len(out) + 1)
                while decoder.unconsumed_tail and len(out) + len(data) <= limit:
                    data += decoder.decompress(decoder.unconsumed_tail, limit - len(out) - len(data) + 1)
            except zlib.error:
                if encoding == "deflate" and not out:
                    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                    data = decoder.decompress(chunk, limit + 1)
                else:
                    break
        else:
            data = chunk
        scan_from = max(0, len(out) - 6)
        out += data
        if len(out) >= limit:
            return bytes(out[:limit])
        if stop_at_head_end and bytes(out[scan_from:]).lower().find(b"</head>") != -1:
            if not callable(stop_at_head_end) or stop_at_head_end(bytes(out)):
                break
            stop_at_head_end = False  # the head lacks something: read the body, up to the cap
    return bytes(out)


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """What a transport exception means for a link check."""

    kind: str  # dns | refused | timeout | tls | reset | guard | protocol | other
    reason: str
    hard: bool = False  # a domain that does not resolve
    transient: bool = False  # worth a retry (timeouts, resets)
    network_level: bool = True  # failed below HTTP: outage evidence


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_DNS_GONE = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def classify_error(exc: BaseException) -> TransportFailure:
    """Map any exception raised while sending or reading a request to a ``TransportFailure``."""
    # Deepest cause first: the transport wraps e.g. ConnectionRefusedError in httpx.ConnectTimeout.
    chain = _causes(exc)[::-1]
    for item in chain:
        if isinstance(item, AddressRefused):
            return TransportFailure("guard", str(item), network_level=False)
    for item in chain:
        if isinstance(item, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
            return TransportFailure("tls", f"TLS certificate error: {_short(item)}")
        if isinstance(item, aiohttp.ClientSSLError | ssl.SSLError):
            return TransportFailure("tls", f"TLS error: {_short(item)}")
        if isinstance(item, socket.gaierror):
            gone = item.errno in _DNS_GONE
            what = "does not resolve" if gone else "DNS lookup failed"
            return TransportFailure("dns", f"{what}: {item.strerror or item}", hard=gone)
        if isinstance(item, ConnectionRefusedError):
            return TransportFailure("refused", "connection refused")
        if isinstance(item, TimeoutError | httpx.TimeoutException):
            return TransportFailure("timeout", "timed out", transient=True)
        if isinstance(
            item,
            ConnectionResetError
            | aiohttp.ServerDisconnectedError
            | aiohttp.ClientPayloadError
            | httpx.ReadError
            | httpx.RemoteProtocolError,
        ):
            return TransportFailure("reset", f"connection reset: {_short(item)}", transient=True)
    for item in chain:
        if isinstance(item, aiohttp.ClientResponseError):
            # aiohttp's parser rejected the response (oversized headers, malformed status line).
            return TransportFailure("protocol", f"bad response: {item.message}", network_level=False)
        if isinstance(item, httpx.UnsupportedProtocol | aiohttp.InvalidURL):
            return TransportFailure("protocol", f"unsupported URL: {_short(item)}", network_level=False)
        if isinstance(item, aiohttp.ClientConnectorError | httpx.ConnectError | ConnectionError):
            return TransportFailure("refused", f"cannot connect: {_short(item)}")
    return TransportFailure("other", f"{type(exc).__name__}: {_short(exc)}", network_level=False)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = [
    "ACCEPT_ENCODING",
    "AddressGuard",
    "AddressRefused",
    "GuardedResolver",
    "Sender",
    "TransportFailure",
    "build_transport",
    "classify_error",
    "default_headers",
    "read_capped",
    "timeouts",
]


_DECLARED_DESCRIPTION = re.compile(
    rb"""(?:property|name|itemprop)\s*=\s*["']?(?:og:|twitter:|dc\.|dcterms\.)?description\b"""
    rb"""|"description"\s*:""",
    re.IGNORECASE,
)


_DECLARED_IMAGE = re.compile(
    rb"""(?:property|name|itemprop)\s*=\s*["']?(?:og:image|twitter:image|image\b)|image_src|"image"\s*:""",
    re.IGNORECASE,
)


def declares_share_metadata(head: bytes) -> bool:
    """Whether a page's head (its bytes up to ``</head>``) declares a description and an image.

    The fetch stops reading at ``</head>`` when it does; otherwise it reads on (within its byte cap) so the
    body can supply the fallbacks. A byte search, not a parse: it runs on the event loop for every page.
    """
    return bool(_DECLARED_DESCRIPTION.search(head)) and bool(_DECLARED_IMAGE.search(head))
