"""No test reaches a public host: sockets connect only to loopback, and only loopback names resolve.

Installed in the test process by ``conftest.py`` and, through ``tests/netguard_site/sitecustomize.py`` on
``PYTHONPATH``, in every Python process a test starts (the CLI runs in subprocesses, with config files the
tests write themselves, and archive lookups are on by default). A refused connection raises
:class:`PublicHostRefused` (a ``ConnectionRefusedError``, so the code under test sees a network failure and
carries on); a refused name is a DNS failure, as on a machine without internet. Either is logged to the
file named by ``LINK_PIPELINE_NETGUARD_LOG`` when set, so a test can show what was attempted.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Any

LOG_ENV = "LINK_PIPELINE_NETGUARD_LOG"
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_INET = (socket.AF_INET, socket.AF_INET6)


class PublicHostRefused(ConnectionRefusedError):
    """A test tried to connect to an address outside loopback."""


def _text(host: Any) -> str:
    return host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)


def _is_local_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _note(what: str) -> None:
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(what + "\n")


def install() -> None:
    """Patch ``socket`` in this process (idempotent)."""
    if getattr(socket.socket.connect, "_netguard", False):
        return
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in _INET and not _is_local_address(_text(address[0])):
            _note(f"connect {address!r}")
            raise PublicHostRefused(errno.ECONNREFUSED, f"test network guard: {address[0]} is not loopback")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = _text(host).rstrip(".").lower() if host is not None else None
        if name is not None and name not in _LOCAL_NAMES and not _is_local_address(name):
            try:
                ipaddress.ip_address(name.split("%", 1)[0])
            except ValueError:
                _note(f"resolve {name}")
                raise socket.gaierror(
                    socket.EAI_NONAME, f"test network guard: {name} is not resolved"
                ) from None
        return real_getaddrinfo(host, *args, **kwargs)

    connect._netguard = True  # type: ignore[attr-defined]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
