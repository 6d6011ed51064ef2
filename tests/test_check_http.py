"""The client factory: address guard, guarded resolver, error classification, client settings."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path

import aiohttp
import httpx
import pytest
from localsite import LocalSite, closed_port, make_settings, serving, tls_material

from pipeline.check.http import (
    AddressGuard,
    GuardedResolver,
    Sender,
    _ssl_context,
    build_transport,
    classify_error,
)
from pipeline.errors import AddressRefused


@pytest.mark.parametrize(
    ("ip", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
    ],
)
def test_guard_refuses_non_public_addresses(ip: str, kind: str) -> None:
    """Loopback, private, link-local, multicast, reserved (also IPv4-mapped IPv6) are refused by default."""
    reason = AddressGuard().why_refused(ip)
    assert reason is not None and kind in reason


def test_guard_allows_public_addresses() -> None:
    """Public IPv4 and IPv6 addresses pass."""
    guard = AddressGuard()
    assert guard.is_allowed("93.184.216.34")
    assert guard.is_allowed("2606:2800:220:1:248:1893:25c8:1946")


def test_allow_networks_let_listed_ranges_through() -> None:
    """An allow list opens exactly its networks: 10.0.0.0/8 allowed, 192.168/16 still refused."""
    guard = AddressGuard(["10.0.0.0/8", "127.0.0.0/8"])
    assert guard.is_allowed("10.9.9.9")
    assert guard.is_allowed("127.0.0.2")
    assert not guard.is_allowed("192.168.1.1")


def test_refusal_checks_only_ip_literals() -> None:
    """refusal() judges literal hosts (IPv6 in brackets too) and leaves names to the resolver."""
    guard = AddressGuard()
    assert guard.refusal("127.0.0.1") is not None
    assert guard.refusal("[::1]") is not None
    assert guard.refusal("example.org") is None


def test_guarded_resolver_refuses_names_resolving_to_refused_addresses() -> None:
    """'localhost' resolves, through the real system resolver, to loopback: refused unless allowed."""

    async def resolve(guard: AddressGuard) -> list[str]:
        resolver = GuardedResolver(guard)
        try:
            return [item["host"] for item in await resolver.resolve("localhost", 80, socket.AF_INET)]
        finally:
            await resolver.close()

    with pytest.raises(AddressRefused, match=r"localhost resolves to 127\.0\.0\.1 is loopback"):
        asyncio.run(resolve(AddressGuard()))
    assert asyncio.run(resolve(AddressGuard(["127.0.0.0/8"]))) == ["127.0.0.1"]


def test_classify_real_refused_and_dns_errors(tmp_path: Path) -> None:
    """Errors raised by the checker's sender for a closed port and a .invalid name are classified."""
    settings = make_settings(tmp_path)

    async def error_for(url: str) -> BaseException:
        async with build_transport(settings) as transport:
            try:
                await Sender(transport, settings.http).send("HEAD", url)
            except Exception as exc:
                return exc
        raise AssertionError("no error")

    refused = classify_error(asyncio.run(error_for(f"http://127.0.0.1:{closed_port()}/")))
    assert (refused.kind, refused.hard, refused.network_level, refused.transient) == (
        "refused",
        False,
        True,
        False,
    )
    dns = classify_error(asyncio.run(error_for("http://nothing-here.invalid/")))
    assert (dns.kind, dns.hard, dns.network_level) == ("dns", True, True)


def test_classify_timeouts_and_resets_as_transient() -> None:
    """Timeouts and server disconnects are worth a retry; unknown errors are not network-level."""
    assert classify_error(httpx.ReadTimeout("slow")).transient
    wrapped = httpx.ReadError("gone")
    wrapped.__cause__ = aiohttp.ServerDisconnectedError()
    assert classify_error(wrapped).kind == "reset"
    other = classify_error(ValueError("odd"))
    assert (other.kind, other.network_level) == ("other", False)


def test_client_sends_user_agent_and_never_follows_redirects(local_site: LocalSite, tmp_path: Path) -> None:
    """The checker's sender sends the configured User-Agent and returns a 301 as is."""
    settings = make_settings(tmp_path, http={"user_agent": "ua-test/1"})
    local_site.route("/r", 301, headers={"Location": "/elsewhere"})

    async def go() -> int:
        async with build_transport(settings) as transport:
            return (await Sender(transport, settings.http).send("GET", local_site.url("/r"))).status_code

    assert asyncio.run(go()) == 301
    assert local_site.count("/elsewhere") == 0
    assert local_site.hits[0].headers["User-Agent"] == "ua-test/1"


def test_requests_carry_their_host_and_the_configured_headers_and_no_body(
    local_site: LocalSite, tmp_path: Path
) -> None:
    """Every request names its host first, then the configured headers and a caller's own, and has no body."""
    settings = make_settings(tmp_path, http={"user_agent": "ua-test/1"})
    local_site.route("/h", 200, body=b"here")
    expected = [
        ("Host", local_site.url("").split("/")[2]),
        ("User-Agent", "ua-test/1"),
        ("Accept-Encoding", "gzip, deflate"),
        ("Accept", "*/*"),
    ]

    async def go() -> None:
        async with build_transport(settings) as transport:
            sender = Sender(transport, settings.http)
            for method in ("HEAD", "GET"):
                await (await sender.send(method, local_site.url("/h"))).aclose()
            url = httpx.URL(local_site.url("/h"))
            headers = sender.headers_for(url).copy()
            headers["Range"] = "bytes=0-9"
            await (await sender.send("GET", url, headers)).aclose()
            assert "Range" not in sender.headers_for(url)  # the caller's copy, not the shared headers

    asyncio.run(go())
    assert [list(hit.headers.items()) for hit in local_site.hits] == [
        expected,
        expected,
        [*expected, ("Range", "bytes=0-9")],
    ]


@pytest.mark.parametrize("named", [False, True], ids=["address", "name"])
def test_client_keeps_no_cookies(tmp_path: Path, named: bool) -> None:
    """A Set-Cookie from one response is not sent with the next request, to an address or a host name
    (aiohttp's default jar already refuses cookies from an address: the name is the case that counts)."""
    with serving(1, first_address=1) as site:  # 127.0.0.1, where localhost resolves
        site.route("/c", 200, headers={"Set-Cookie": "session=abc; Path=/"})
        url = site.url("/c").replace("127.0.0.1", "localhost") if named else site.url("/c")

        async def go() -> None:
            settings = make_settings(tmp_path)
            async with build_transport(settings) as transport:
                sender = Sender(transport, settings.http)
                for _ in range(2):
                    await (await sender.send("GET", url)).aclose()

        asyncio.run(go())
        hits = list(site.hits)

    assert len(hits) == 2
    assert all("Cookie" not in hit.headers for hit in hits)


def test_the_tls_context_is_made_once_until_the_ca_bundle_changes(tmp_path: Path) -> None:
    """Transports built again (a worker's next shard) share one TLS context; a rewritten CA bundle gets a
    new one that trusts the new CA."""
    _, ca = tls_material(tmp_path, ["127.0.0.1"])
    first = _ssl_context(make_settings(tmp_path, ca).http)

    assert _ssl_context(make_settings(tmp_path, ca).http) is first
    _, same_path = tls_material(tmp_path, ["127.0.0.1"])  # the file rewritten with a new CA
    os.utime(same_path, ns=(0, 2))  # a new mtime even on a coarse clock
    again = _ssl_context(make_settings(tmp_path, ca).http)
    assert again is not first and again.get_ca_certs() != first.get_ca_certs()


def test_without_a_ca_bundle_the_system_store_is_read_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no CA bundle and verification on, the TLS context is aiohttp's verified one (the system's CA
    store it read when imported), checking hostnames; a new one is made once that is older than the TTL."""
    from pipeline.check import http

    monkeypatch.setattr(http, "_contexts", {})
    made = _ssl_context(make_settings(tmp_path).http)
    assert made is aiohttp.connector._SSL_CONTEXT_VERIFIED
    assert made.verify_mode == ssl.CERT_REQUIRED and made.check_hostname
    monkeypatch.setattr(http, "_contexts", {})
    monkeypatch.setattr(http, "_IMPORTED", http._IMPORTED - http._CONTEXT_TTL_S)
    fresh = _ssl_context(make_settings(tmp_path).http)
    assert fresh is not made and fresh.verify_mode == ssl.CERT_REQUIRED


def test_a_ca_bundle_replaced_with_its_old_mtime_still_gets_a_new_tls_context(tmp_path: Path) -> None:
    """A bundle swapped in keeping its mtime (cp -p, rsync -t) is still read again; verify off is its own."""
    _, ca = tls_material(tmp_path, ["127.0.0.1"])
    stamp = ca.stat().st_mtime_ns
    first = _ssl_context(make_settings(tmp_path, ca).http)
    replacement = tmp_path / "new-ca.pem"
    (tmp_path / "other").mkdir()
    _, fresh = tls_material(tmp_path / "other", ["127.0.0.1"])
    replacement.write_bytes(fresh.read_bytes())
    os.utime(replacement, ns=(stamp, stamp))
    os.replace(replacement, ca)  # a new inode at the same path, the old mtime
    again = _ssl_context(make_settings(tmp_path, ca).http)
    assert again is not first and again.get_ca_certs() != first.get_ca_certs()
    unverified = _ssl_context(
        make_settings(tmp_path, ca, http={"verify_tls": False, "ca_bundle": str(ca)}).http
    )
    assert unverified is not again and unverified.verify_mode == ssl.CERT_NONE
