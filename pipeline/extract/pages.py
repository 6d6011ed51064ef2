"""Observations -> page metadata and image probes, as they arrive, so that no body is kept.

Reads: each ``Observation`` the checker hands over (with the head of the page or the first bytes of the
image it fetched). Returns (in its attributes): ``pages`` (normalized URL -> ``PageMeta``) for pages fit to
supply metadata, ``validators`` (URL -> (ETag, Last-Modified)) of those pages, ``probes`` (URL ->
``ImageProbe``) and ``refused`` ((URL, reason) for pages that are not:
error pages and bot walls, redirects to a front page or a login wall, pages that could not be parsed).
Uses no settings.

Parsing runs on a worker thread, never on the checker's event loop: a slow page then delays neither the
other requests nor a stop request. Call :meth:`PageReader.drain` before reading the results and
:meth:`PageReader.close` at the end of the run.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Callable, Container, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit

from pipeline.extract.guard import looks_like_error_page
from pipeline.models import ANSWERED, ImageMeta, ImageProbe, Observation, PageMeta
from pipeline.packed import PackedMap

log = logging.getLogger("pipeline")


# The parser and the image reader (selectolax, charset detection, imagesize: about 22 ms) are loaded on the
# digest's thread when the first page or image comes, not before a run's first request (or ever, in a run
# whose answers hold no page to read).
def scrape(body: bytes, url: str, headers: Mapping[str, str] | None = None) -> PageMeta:
    """``extract.html.scrape``."""
    from pipeline.extract.html import scrape as scrape_page

    return scrape_page(body, url, headers)


def measure(
    url: str, body: bytes, content_type: str | None, http_ok: bool, *, http_status: int | None = None
) -> ImageProbe:
    """``extract.images.measure``."""
    from pipeline.extract.images import measure as measure_image

    return measure_image(url, body, content_type, http_ok, http_status=http_status)


_QUEUED = 64  # observations (with their bodies) waiting for the parser


class Advances(Protocol):
    """The progress display, as far as reading pages needs it (``console.Progress`` in a run)."""

    def advance(self, n: int = 1) -> None: ...


class PageReader:
    """Turns each observation into page metadata or an image probe as it arrives, so bodies are not kept."""

    def __init__(
        self,
        page_urls: Container[str],
        image_urls: Container[str],
        progress: Advances,
        then: Callable[[Observation], None] | None = None,
    ) -> None:
        self.page_urls = page_urls
        self.image_urls = image_urls
        self.progress = progress
        self.pages = PageTable()
        self.refused: list[tuple[str, str]] = []
        self.probes = ProbeTable()
        self.validators: dict[str, tuple[str | None, str | None]] = {}  # only pages that sent one
        self.shared = SharedPages()
        # One worker: results are written by one thread only, and read after drain().
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")
        self._pending: list[Future[None]] = []
        # Bodies waiting for the parser are held in memory; past this many the checker waits for it.
        self._room = threading.BoundedSemaphore(_QUEUED)
        self._then = then  # sees each observation once it is digested, on the parser's thread (a worker)

    def expect_images(self, urls: Container[str]) -> None:
        """The next bodies read are probes of these images (the ones the decisions may write)."""
        self.image_urls = urls

    def __call__(self, obs: Observation) -> None:
        self.progress.advance()
        log.debug("%s %s %s %s", obs.outcome.value, obs.http_status or "-", obs.url, obs.reason)
        if self._then is None and not self.needs_digest(obs):
            return  # no image, and no page to parse: no hand-over to the parser
        self._room.acquire()
        self._pending.append(self._pool.submit(self._safe_digest, obs))
        if len(self._pending) > 4 * _QUEUED:
            # A finished future holds about 1 KB (its condition and lock): one per URL adds up on a
            # large corpus, so finished ones are let go as the check goes (drain() sees the rest).
            kept = []
            for future in self._pending:
                if future.done():
                    future.result()
                else:
                    kept.append(future)
            self._pending = kept

    def drain(self) -> None:
        """Wait until every observation handed over so far is digested."""
        for future in self._pending:
            future.result()
        self._pending.clear()

    def close(self) -> None:
        """Stop the worker; observations not digested yet are dropped (the run is ending)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PageReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _safe_digest(self, obs: Observation) -> None:
        try:
            self._digest(obs)
        except Exception as exc:  # a parser bug on one hostile page must not end the run
            log.exception("could not read %s", obs.url)
            self.refused.append((obs.url, f"could not be read: {type(exc).__name__}: {exc}"))
        finally:
            self._room.release()
        if self._then is not None:
            self._then(obs)

    def add(
        self,
        url: str,
        *,
        page: PageMeta | None = None,
        validators: tuple[str | None, str | None] | None = None,
        probe: ImageProbe | None = None,
        refused: str | None = None,
    ) -> None:
        """Results another process digested for ``url`` (a worker of the distributed engine)."""
        if page is not None:
            self.pages[url] = self.shared.kept(url, page)
        if validators is not None and validators != (None, None):
            self.validators[url] = validators
        if probe is not None:
            self.probes[url] = self.shared.probe(probe)
        if refused is not None:
            self.refused.append((url, refused))

    def needs_digest(self, obs: Observation) -> bool:
        """Whether the parser has anything to do for this observation: an image to measure, a page to read."""
        return obs.url in self.image_urls or self._may_be_read(obs)

    def _may_be_read(self, obs: Observation) -> bool:
        """Whether ``_digest`` could read page metadata from this observation (a live page's HTML body)."""
        if obs.page is None or obs.url not in self.page_urls or obs.outcome not in ANSWERED:
            return False
        content_type = obs.page.content_type.lower()
        return not content_type or "html" in content_type

    def _digest(self, obs: Observation) -> None:
        alive = obs.outcome in ANSWERED
        if obs.url in self.image_urls:
            page = obs.page
            if alive and page is None:
                return  # answered without its bytes (a network baseline check): nothing to measure
            self.probes[obs.url] = self.shared.probe(
                measure(
                    obs.url,
                    page.body if page else b"",
                    page.content_type if page else None,
                    alive,
                    http_status=obs.http_status,
                )
            )
        elif self._may_be_read(obs):
            assert obs.page is not None
            landed = landing_page(obs.url, obs.page.final_url)
            if landed:
                self.refused.append((obs.url, landed))
                return
            meta = scrape(obs.page.body, obs.page.final_url, obs.page.headers)
            reason = looks_like_error_page(meta)
            if reason:
                self.refused.append((obs.url, reason))
            else:
                self.pages[obs.url] = self.shared.kept(obs.url, meta)
                headers = obs.page.headers
                validators = (headers.get("etag"), headers.get("last-modified"))
                if validators != (None, None):  # most pages send neither: nothing kept for them
                    self.validators[obs.url] = validators


class SharedPages:
    """Keeps a run's pages and probes small: only what the run reads of a page, equal parts one object.

    A large corpus keeps the metadata of every page it cites through the write pass. The decisions and
    the stored copy read a page's final URL, title, description, canonical and AMP URLs, sources and its
    share image (the first, its URL and declared size); its other images, the images' alt text and type,
    the site name and the publication date are read by nothing after the scrape, so they are not kept.
    Most pages name the same few sources (``og``, ``twitter`` …) and were read from the URL asked for.
    ``PageMeta`` is a value (frozen, never mutated), so sharing its parts is safe.
    """

    def __init__(self) -> None:
        self._sources: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        self._texts: dict[str, str] = {}  # content types and probe reasons: a few values for every image

    def probe(self, probe: ImageProbe) -> ImageProbe:
        """``probe`` with its content type and reason the one string of their value."""
        content_type = probe.content_type and self._texts.setdefault(probe.content_type, probe.content_type)
        reason = self._texts.setdefault(probe.reason, probe.reason)
        if content_type is probe.content_type and reason is probe.reason:
            return probe
        return dataclasses.replace(probe, content_type=content_type, reason=reason)

    def kept(self, url: str, meta: PageMeta) -> PageMeta:
        """What the run keeps of ``meta``, the page read for ``url``."""
        sources = self._sources.setdefault(tuple(meta.sources.items()), meta.sources)
        final = url if meta.url == url else meta.url
        images = meta.images[:1]
        if images and (images[0].alt is not None or images[0].type is not None):
            images = (ImageMeta(images[0].url, images[0].width, images[0].height),)
        return dataclasses.replace(
            meta, url=final, sources=sources, images=images, site_name=None, published=None
        )


_NUL, _NONE = "\x00", "\x01"  # the packed fields' separator, and a field that is None


class PageTable(PackedMap[PageMeta, bytes | PageMeta]):
    """Page metadata by normalized URL, each page packed into one ``bytes`` and decoded when read.

    A run keeps the metadata of every page it cites from the check to the end of the write pass (about a
    page per article). As a ``PageMeta`` with its own strings and its share image's record a page costs
    about 500 bytes; packed (its texts joined in one UTF-8 ``bytes``, its final URL left out when it is
    the URL asked for, its sources map one of the few distinct ones) about half. A page with more than
    one image, or a text holding the separator, is kept as it is. Reading a page makes an equal
    ``PageMeta`` (its sources map the one shared object: pages are values, never mutated).
    """

    def __init__(self) -> None:
        self._rows: dict[str, bytes | PageMeta] = {}
        self._sources: list[dict[str, str]] = []
        self._source_numbers: dict[tuple[tuple[str, str], ...], int] = {}

    def __setitem__(self, url: str, meta: PageMeta) -> None:
        image = meta.images[0] if meta.images else None
        texts = (
            None if meta.url == url else meta.url,
            meta.title,
            meta.description,
            meta.canonical,
            meta.amp,
            meta.site_name,
            meta.published,
            *((image.url, image.alt, image.type) if image else (None, None, None)),
        )
        if len(meta.images) > 1 or any(t is not None and (_NUL in t or t == _NONE) for t in texts):
            self._rows[url] = meta
            return
        key = tuple(meta.sources.items())
        sources = self._source_numbers.get(key)
        if sources is None:
            sources = self._source_numbers[key] = len(self._sources)
            self._sources.append(meta.sources)
        numbers = (image.width, image.height) if image else (None, None)
        fields = [_NONE if t is None else t for t in texts]
        fields += [_NONE if n is None else str(n) for n in numbers]
        fields += ["1" if image else "0", str(sources)]
        self._rows[url] = _NUL.join(fields).encode()

    def __getitem__(self, url: str) -> PageMeta:
        row = self._rows[url]
        if isinstance(row, PageMeta):
            return row
        fields: list[str | None] = [None if f == _NONE else f for f in row.decode().split(_NUL)]
        final, title, description, canonical, amp, site, published, image_url, alt, kind = fields[:10]
        width, height, has_image, sources = fields[10:]
        images: tuple[ImageMeta, ...] = ()
        if has_image == "1":
            assert image_url is not None
            size = (None if width is None else int(width), None if height is None else int(height))
            images = (ImageMeta(image_url, *size, alt=alt, type=kind),)
        return PageMeta(
            url if final is None else final,
            title,
            description,
            images,
            canonical,
            amp,
            site,
            published,
            self._sources[int(sources or 0)],
        )


_SIDE = 40  # bits per packed pixel dimension (plus one: 0 is None)


class ProbeTable(PackedMap[ImageProbe, int | ImageProbe]):
    """Image probes by normalized URL, each packed into one integer and decoded when read.

    A run keeps a probe of about every image it cites (the share image of each page among them) until the
    write pass: as an ``ImageProbe`` with its two size numbers one costs about 140 bytes, packed about 40
    (alive, width and height, and the numbers of its content type and reason among the few distinct
    ones). A probe whose URL is not its key, or whose size does not fit, is kept as it is.
    """

    def __init__(self) -> None:
        self._rows: dict[str, int | ImageProbe] = {}
        self._texts: list[str | None] = []
        self._numbers: dict[str | None, int] = {}

    def _number(self, text: str | None) -> int:
        number = self._numbers.get(text)
        if number is None:
            number = self._numbers[text] = len(self._texts)
            self._texts.append(text)
        return number

    def __setitem__(self, url: str, probe: ImageProbe) -> None:
        numbers = (probe.width, probe.height)
        if probe.url != url or any(n is not None and not 0 <= n < (1 << _SIDE) - 1 for n in numbers):
            self._rows[url] = probe
            return
        sides = [0 if n is None else n + 1 for n in numbers]  # 0: no number
        texts = self._number(probe.content_type) << 32 | self._number(probe.reason)
        self._rows[url] = ((texts << _SIDE | sides[1]) << _SIDE | sides[0]) << 1 | probe.alive

    def __getitem__(self, url: str) -> ImageProbe:
        row = self._rows[url]
        if isinstance(row, ImageProbe):
            return row
        mask = (1 << _SIDE) - 1
        width, height, texts = (row >> 1) & mask, (row >> (1 + _SIDE)) & mask, row >> (1 + 2 * _SIDE)
        reason = self._texts[texts & 0xFFFFFFFF]
        return ImageProbe(
            url,
            bool(row & 1),
            self._texts[texts >> 32],
            width - 1 if width else None,
            height - 1 if height else None,
            reason or "",
        )


# Whole path segments only: /login is a wall, /2024/authentic-sourdough and /author/ann are not.
_GATEWAY_WORDS = re.compile(
    r"(?:^|/)(?:log-?in|sign-?in|signon|auth|oauth2?|sso|consent|subscribe|paywall|captcha)(?:/|$|\.)",
    re.IGNORECASE,
)


def landing_page(url: str, final_url: str) -> str | None:
    """Why a redirect's target is not the article (a removed story sent to the home page or a login wall)."""
    if final_url == url:
        return None
    asked, landed = urlsplit(url), urlsplit(final_url)
    if landed.path in ("", "/") and asked.path not in ("", "/"):
        return f"redirected to the site's front page {final_url}: not the article's own metadata"
    if _GATEWAY_WORDS.search(landed.path) and not _GATEWAY_WORDS.search(asked.path):
        return f"redirected to {final_url}, which looks like a login or consent page"
    return None
