"""One URL checked: its attempts (HEAD, GET, Range), redirect hops by hand, retries around the host's limits.

Reads settings ``http.*`` and ``retry.*`` (see :mod:`pipeline.check`). Returns an :class:`Attempt`
(internal) and, per URL, an ``Observation``; no httpx object leaves this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_exponential_jitter

from pipeline.accept import HostRules
from pipeline.check.http import (
    AddressGuard,
    Sender,
    classify_error,
    declares_share_metadata,
    read_capped,
)
from pipeline.check.queue import STALL_AFTER, Host, HostQueue
from pipeline.check.retry import outcome_for_status, parse_retry_after
from pipeline.models import FetchedPage, Observation, Outcome, Validators, host_key

if TYPE_CHECKING:  # the settings are read, never built, here: the check's process loads no pydantic
    from pipeline.config import Settings

_PERMANENT = frozenset({301, 308})
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _host_port(url: httpx.URL) -> tuple[str, int]:
    return url.host, url.port or (443 if url.scheme == "https" else 80)


@dataclass(slots=True)
class Attempt:
    """One attempt at a URL (all its redirect hops); internal to this module."""

    outcome: Outcome
    status: int | None = None
    final_url: str | None = None
    redirects: tuple[str, ...] = ()
    reason: str = ""
    network_level: bool = False
    transient: bool = False
    retry_after: float | None = None
    page: FetchedPage | None = None
    fall_back_to_get: bool = False
    range_refused: bool = False
    headers: httpx.Headers | None = None  # of the final answer, for the host's controller


class _Checker:
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        settings: Settings,
        scheduler: HostQueue,
        validators: Mapping[str, Validators],
    ) -> None:
        self._validators = validators
        self._settings = settings
        self._guard = AddressGuard(settings.http.allow_networks)
        self._scheduler = scheduler
        self.used_tls = False
        self._refusals: dict[str, str | None] = {}  # per host key: the guard's answer for its IP literal
        self._sender = Sender(transport, settings.http)
        self._rules = HostRules.from_settings(settings.http)  # http.accept and http.hosts

    async def check(
        self, url: str, parsed: httpx.URL, host: Host, want: int | None, *, once: bool = False
    ) -> Observation:
        """Check one URL (``once``: without retries); the caller holds a slot on ``host`` and gets it back."""
        started = time.monotonic()
        refusal = self._refusals.get(host.key, "?")
        if refusal == "?":
            refusal = self._refusals[host.key] = self._guard.refusal(parsed.host)
        if refusal:
            return Observation(url, Outcome.SKIPPED, reason=refusal, host=host.key)
        result = await self._with_retries(parsed, host, want, self._conditional(url), once)
        return Observation(
            url=url,
            outcome=result.outcome,
            http_status=result.status,
            final_url=result.final_url,
            redirects=result.redirects,
            reason=result.reason,
            network_level=result.network_level,
            host=host.key,
            elapsed=time.monotonic() - started,
            page=result.page,
        )

    def _conditional(self, url: str) -> dict[str, str] | None:
        etag, modified = self._validators.get(url) or (None, None)
        if not etag and not modified:
            return None
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
        return headers

    async def _with_retries(
        self, url: httpx.URL, host: Host, want: int | None, conditional: dict[str, str] | None, once: bool
    ) -> Attempt:
        retry = self._settings.retry
        method = "GET" if want is not None else "HEAD"
        use_range = want is not None and want < self._settings.http.max_page_bytes
        pressed = False  # this URL already answered 429/503

        async def attempt() -> Attempt:
            nonlocal method, use_range, pressed
            sent_at = time.monotonic()
            stalled = False

            def stall() -> None:
                nonlocal stalled
                stalled = True
                self._scheduler.stall(host, True)

            # Only a halved host needs to know that a request is stuck (see HostQueue._has_slot).
            timer = asyncio.get_running_loop().call_later(STALL_AFTER, stall) if host.reduced else None
            try:
                result = await self._attempt(url, method, want, use_range, conditional)
                if result.range_refused:
                    use_range = False
                    result = await self._attempt(url, method, want, use_range, conditional)
                if result.fall_back_to_get:
                    method = "GET"
                    result = await self._attempt(url, method, want, use_range, conditional)
            finally:
                if timer is not None:
                    timer.cancel()
                if stalled:
                    self._scheduler.stall(host, False)
            if result.status is not None and result.headers is not None:
                # The host that answered (a redirect target, maybe) is the one whose limits adapt.
                answered: Host | None = host
                if result.redirects and result.final_url:
                    answered = self._scheduler.hosts.get(host_key(result.final_url))
                if answered is not None:
                    # Most answers carry no rate-limit header: one scan of the raw names spares parsing.
                    limits = any(b"ratelimit" in name.lower() for name, _ in result.headers.raw)
                    answered.control.observe(
                        result.status,
                        result.headers if limits else None,
                        result.retry_after,
                        sent_at,
                        repeat=pressed,
                    )
                    pressed = pressed or result.status in (429, 503)
            return result

        first = await attempt()
        if not first.transient or retry.attempts == 1 or once:
            return first  # the common case: no retry machinery built at all
        replayed = False

        async def replay_then_attempt() -> Attempt:
            # tenacity's first attempt is the one already made, so its waits and stops count it.
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await attempt()

        async def wait_off_slot(seconds: float) -> None:
            # Never wait holding the host's slot, and never retry around its limits: give the slot back,
            # wait (at least the Retry-After), then queue for one like any request (after a 429 or 503:
            # behind the host's pause, within its reduced concurrency).
            self._scheduler.done(host)
            await asyncio.sleep(seconds)
            await self._scheduler.reacquire(host)

        backoff = wait_exponential_jitter(
            multiplier=retry.backoff_initial, max=retry.backoff_max, jitter=retry.backoff_initial
        )

        def wait(state: RetryCallState) -> float:
            last = state.outcome.result() if state.outcome else None
            if last is not None and last.retry_after is not None:
                return min(float(last.retry_after), retry.retry_after_max)
            return float(backoff(state))

        def stop(state: RetryCallState) -> bool:
            # Out of attempts, or the server asked for a longer pause than we are willing to wait.
            last = state.outcome.result() if state.outcome else None
            too_long = last is not None and (last.retry_after or 0.0) > retry.retry_after_max
            return state.attempt_number >= retry.attempts or too_long

        def give_back(state: RetryCallState) -> Attempt:
            assert state.outcome is not None
            result: Attempt = state.outcome.result()
            return result

        retrying = AsyncRetrying(
            sleep=wait_off_slot,
            stop=stop,
            wait=wait,
            retry=retry_if_result(lambda r: bool(r.transient)),
            retry_error_callback=give_back,
        )
        result: Attempt = await retrying(replay_then_attempt)
        return result

    async def _attempt(
        self,
        url: httpx.URL,
        method: str,
        want: int | None,
        use_range: bool,
        conditional: dict[str, str] | None,
    ) -> Attempt:
        http = self._settings.http
        current = url
        hops: list[str] = []
        seen: set[str] = set()  # the URLs of this attempt's hops, the first included once it has one
        moved = False
        try:
            async with asyncio.timeout(http.total_timeout):
                for _ in range(http.max_redirects + 1):
                    if hops:
                        refusal = self._guard.refusal(current.host)
                        if refusal:
                            return Attempt(
                                Outcome.SKIPPED,
                                final_url=str(current),
                                redirects=tuple(hops),
                                reason=f"redirect to {current}: {refusal}",
                            )
                    headers = self._sender.headers_for(current)
                    extra = self._rules.headers(*_host_port(current))  # this hop's host only
                    if extra or conditional or (use_range and want):
                        headers = headers.copy()
                        headers.update(extra)
                        headers.update(conditional or {})
                    if use_range and want:
                        headers["Range"] = f"bytes=0-{want - 1}"
                    if current.scheme == "https":
                        self.used_tls = True
                    # Straight to the transport: redirects, cookies and auth are this module's business
                    # (none wanted), and skipping AsyncClient.send measured ~20% faster (tools.bench).
                    response = await self._sender.send(method, current, headers)
                    try:
                        location = response.headers.get("location")
                        if location and 300 <= response.status_code < 400 and response.status_code != 304:
                            if not hops:
                                moved = response.status_code in _PERMANENT
                            if not hops:
                                seen.add(str(current))  # made only for an answer that redirects
                            current = response.url.join(location)
                            hops.append(str(current))
                            if str(current) in seen:
                                return Attempt(
                                    Outcome.SOFT,
                                    status=response.status_code,
                                    final_url=str(current),
                                    redirects=tuple(hops),
                                    reason=f"redirect loop after {len(hops)} hops (back to {current})",
                                )
                            seen.add(str(current))
                            continue
                        return await self._final(
                            response, method, want, use_range, hops, moved, url, conditional is not None
                        )
                    finally:
                        await response.aclose()
                return Attempt(
                    Outcome.SOFT,
                    final_url=str(current),
                    redirects=tuple(hops),
                    reason=f"redirect loop: more than {http.max_redirects} redirects",
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = classify_error(exc)
            if failure.kind == "guard":
                outcome = Outcome.SKIPPED
            else:
                outcome = Outcome.HARD if failure.hard else Outcome.SOFT
            return Attempt(
                outcome,
                final_url=str(current),
                redirects=tuple(hops),
                reason=failure.reason if not hops else f"{failure.reason} (at {current})",
                network_level=failure.network_level,
                transient=failure.transient,
                fall_back_to_get=method == "HEAD" and failure.kind in ("reset", "protocol"),
            )

    async def _final(
        self,
        response: httpx.Response,
        method: str,
        want: int | None,
        use_range: bool,
        hops: list[str],
        moved: bool,
        origin: httpx.URL,
        conditional: bool,
    ) -> Attempt:
        status = response.status_code
        if status == 416 and use_range:
            return Attempt(Outcome.SOFT, status=status, range_refused=True)
        # Made once: the request's URL and the response's are one (redirects are followed by hand).
        final_url = str(response.url)
        if status == 304 and conditional:
            # Unchanged since the stored validators: alive, and no body to read (the stored metadata stands).
            return Attempt(
                Outcome.MOVED if moved else Outcome.SUCCESS,
                status=status,
                final_url=final_url,
                redirects=tuple(hops),
                reason="HTTP 304 Not Modified: unchanged since the stored ETag/Last-Modified",
                headers=response.headers,
            )
        challenged = "cf-mitigated" in response.headers
        outcome, transient = outcome_for_status(status, challenged)
        phrase = f"HTTP {status} {response.reason_phrase}".strip()
        # http.accept (per host: the article's URL's host) decides which final codes count as alive.
        if not challenged and self._rules.accepted(*_host_port(origin), status):
            if outcome is not Outcome.SUCCESS:
                outcome, transient, phrase = Outcome.SUCCESS, False, f"{phrase} (accepted by http.accept)"
        elif outcome is Outcome.SUCCESS:
            outcome, phrase = Outcome.SOFT, f"{phrase} (not in http.accept)"
        retry_after = parse_retry_after(response.headers.get("retry-after")) if transient else None
        if method == "HEAD" and outcome is not Outcome.SUCCESS and status != 429:
            return Attempt(outcome, status=status, fall_back_to_get=True, reason=phrase)
        page = None
        if outcome is Outcome.SUCCESS:
            if moved:
                outcome = Outcome.MOVED
                reason = f"{phrase} after a permanent redirect to {final_url}"
            else:
                reason = phrase if not hops else f"{phrase} after {len(hops)} redirect(s)"
            if want is not None and 200 <= status < 300:  # an accepted 403's body is no page to read
                page = await self._read_page(response, want, final_url)
        elif challenged:
            reason = f"{phrase}: challenge page (cf-mitigated)"
        elif outcome is Outcome.HARD and hops:
            reason = f"redirect to a {status}: {final_url}"
        else:
            reason = phrase
        if retry_after is not None and retry_after > self._settings.retry.retry_after_max:
            reason += f"; Retry-After {retry_after:.0f}s exceeds the cap, not retried"
        return Attempt(
            outcome,
            status=status,
            final_url=final_url,
            redirects=tuple(hops),
            reason=reason,
            transient=transient,
            retry_after=retry_after,
            page=page,
            headers=response.headers,
        )

    async def _read_page(self, response: httpx.Response, want: int, url: str) -> FetchedPage:
        content_type = response.headers.get("content-type", "")
        is_html = content_type.split(";")[0].strip().lower() in _HTML_TYPES
        limit = min(want, self._settings.http.max_decompressed_bytes)
        # The body is read past </head> only for a page whose head lacks a description or an image, and
        # only when a body fallback may use it.
        metadata = self._settings.metadata
        wants_body = metadata.excerpt.from_body or metadata.images.from_body
        stop = (declares_share_metadata if wants_body else True) if is_html else False
        body = await read_capped(response, limit, stop_at_head_end=stop)
        return FetchedPage(
            url=url,  # the request's, which is the response's (see _final)
            final_url=url,
            content_type=content_type,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
        )
