"""The one host key of a URL: what the check shards by, the report's per-host figures and the outage
baseline use (re-exported by ``pipeline.models``)."""

from __future__ import annotations

import contextlib
import functools
from typing import NewType
from urllib.parse import urlsplit

HostKey = NewType("HostKey", str)


def host_key(url: str) -> HostKey:
    """The one host key: lower-cased ``hostname:port``, default port filled in (``https://H/x`` -> ``h:443``).

    It shards the check stage's work (one queue and one politeness controller per key), keys the per-host
    figures in the report and picks the outage baseline's hosts; an IDN host is given in its ASCII form.
    """
    # The key reads only the scheme, host and port, before the path: worked out once per such start (a
    # corpus has far fewer hosts than URLs; the plan and the report ask for every URL's key). URLs holding
    # characters that ``urlsplit`` drops are parsed whole.
    if not url.isprintable() or " " in url:
        return _parsed_host_key(url)
    end = url.find("/", url.find("//") + 2)
    return _origin_host_key(url if end < 0 else url[:end])


def _parsed_host_key(url: str) -> HostKey:
    parts = urlsplit(url)
    host = parts.hostname or ""
    # Not every label passes IDNA 2003; the host as written is still one stable key (so is an ASCII host,
    # which the codec would only give back or refuse: skipped, it is called for every URL of the report).
    if not host.isascii():
        with contextlib.suppress(UnicodeError):
            host = host.encode("idna").decode("ascii")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return HostKey(f"{host.lower()}:{port}")


_origin_host_key = functools.lru_cache(maxsize=16384)(_parsed_host_key)  # a few MB at most
