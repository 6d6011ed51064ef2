"""Accepted HTTP status codes (lychee's range syntax) and per-host overrides of the check.

Reads settings ``http.accept`` and ``http.hosts`` (each host's ``accept``, ``per_host_concurrency``,
``headers``). Returns: ``parse_accept`` turns ``[200..=299, 403]`` into a set of codes (a malformed range
raises ``ValueError`` naming it); ``HostRules`` answers, per host, which codes count as alive, how many
requests may be in flight, and which extra headers to send.

The range syntax is lychee's (``--accept``): a code (``403``), ``start..end`` (end excluded, as in Rust:
``200..300`` is 200–299), ``start..=end`` (end included), and open ends ``..=204``, ``..204``, ``200..``.
Items are given as a YAML list or as one comma-separated string (``"200..=299, 403"``). Codes are 100–999.

A host key is a host name, optionally with a port (``example.com``, ``example.com:8443``); it matches that
host exactly, not its subdomains. Headers go only to the configured host, never to a redirect target
elsewhere (a token must not leak).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("pipeline")
_MIN, _MAX = 100, 999
_RANGE = re.compile(r"^(\d+)?\s*\.\.\s*(=)?\s*(\d+)?$")
_HOST = re.compile(r"^(?:[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|\[[0-9a-f:.]+\])(?::\d{1,5})?$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
DEFAULT_ACCEPT = "200..=299"


def _items(value: Any) -> list[str]:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a status code or range")
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            out.extend(_items(item))
        return out
    raise ValueError(f"{value!r} is not a status code, a range or a list of them")


def _code(text: str, item: str) -> int:
    number = int(text)
    if not _MIN <= number <= _MAX:
        raise ValueError(f"{item!r}: {number} is not an HTTP status code ({_MIN}-{_MAX})")
    return number


def parse_accept(value: Any) -> frozenset[int]:
    """Pure: lychee's accept syntax -> the set of accepted codes; ``ValueError`` names a bad item."""
    codes: set[int] = set()
    for item in _items(value):
        if not item:
            raise ValueError(f"{value!r}: an empty item")
        if item.isdigit():
            codes.add(_code(item, item))
            continue
        match = _RANGE.match(item)
        if match is None:
            raise ValueError(f"{item!r} is not a status code or a range such as 200..=299")
        start = _code(match.group(1), item) if match.group(1) else _MIN
        if match.group(3) is None:
            if match.group(2):
                raise ValueError(f"{item!r}: `..=` needs an end")
            end = _MAX
        else:
            end = _code(match.group(3), item) - (0 if match.group(2) else 1)
        if end < start:
            raise ValueError(f"{item!r} is an empty range")
        codes.update(range(start, end + 1))
    return frozenset(codes)


def check_host_key(key: str) -> str:
    """A host key, lower-cased; ``ValueError`` when it is not ``host`` or ``host:port``."""
    lowered = key.strip().lower()
    if not _HOST.match(lowered):
        raise ValueError(f"{key!r} is not a host name (expected `example.com` or `example.com:8443`)")
    return lowered.rstrip(".")


def check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names must be HTTP tokens and values one line; ``ValueError`` names the header."""
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a header name")
        if "\r" in value or "\n" in value:
            raise ValueError(f"the value of header {name!r} contains a line break")
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            raise ValueError(f"header {name!r} is managed by the checker and cannot be set")
    return dict(headers)


@cache
def _parsed(value: str | tuple[Any, ...]) -> frozenset[int]:
    return parse_accept(list(value) if isinstance(value, tuple) else value)


def _hashable(value: Any) -> str | tuple[Any, ...]:
    if isinstance(value, list):
        return tuple(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class _HostRule:
    accept: frozenset[int] | None
    per_host_concurrency: int | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HostRules:
    """Per-host answers for the checker, built once per run from ``http.accept`` and ``http.hosts``."""

    accept: frozenset[int]
    per_host_concurrency: int
    hosts: Mapping[str, _HostRule] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, http: Any) -> HostRules:
        """From an ``HttpSettings`` (validated: every value here parses)."""
        hosts = {
            key: _HostRule(
                _parsed(_hashable(rule.accept)) if rule.accept is not None else None,
                rule.per_host_concurrency,
                dict(rule.headers),
            )
            for key, rule in http.hosts.items()
        }
        return cls(_parsed(_hashable(http.accept)), http.per_host_concurrency, hosts)

    def _rule(self, host: str, port: int | None) -> _HostRule | None:
        if not self.hosts:
            return None
        host = host.lower()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # URL parsers give IPv6 hosts bare; keys are written bracketed
        if port is not None:
            rule = self.hosts.get(f"{host}:{port}")
            if rule is not None:
                return rule
        return self.hosts.get(host)

    def accepted(self, host: str, port: int | None, status: int) -> bool:
        """Whether ``status`` counts as alive for this host."""
        rule = self._rule(host, port)
        codes = rule.accept if rule is not None and rule.accept is not None else self.accept
        return status in codes

    def concurrency(self, host: str, port: int | None) -> int:
        """Requests in flight at once to this host."""
        rule = self._rule(host, port)
        if rule is not None and rule.per_host_concurrency is not None:
            return rule.per_host_concurrency
        return self.per_host_concurrency

    def unused(self, hosts: Iterable[tuple[str, int]]) -> list[str]:
        """Configured host keys that match none of ``hosts`` (host, port): likely typos, for a warning."""
        keys: set[str] = set()
        for host, port in hosts:
            host = host.lower()
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            keys.update((host, f"{host}:{port}"))
        return sorted(key for key in self.hosts if key not in keys)

    def headers(self, host: str, port: int | None) -> dict[str, str]:
        """Extra request headers for this host only (empty for every other host)."""
        rule = self._rule(host, port)
        return rule.headers if rule is not None else {}


def warn_unused_hosts(http: Any, urls: Iterable[str]) -> list[str]:
    """Log (and return) the ``http.hosts`` keys that match no URL of the corpus: most likely typos."""
    if not http.hosts:
        return []
    seen = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            seen.add((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    unused = HostRules.from_settings(http).unused(seen)
    for key in unused:
        log.warning("http.hosts.%s: no URL of the corpus is on this host (a typo?)", key)
    return unused
