"""The read pass and the check overlapped: due URLs are checked while the read pass still finds more.

Reads: the run's settings (``links.*``, ``health.recheck_ok_after_days``, ``http.max_page_bytes``,
``metadata.*``), options, link filter and history. Returns: the check's observations, the ones the
sequential check of the same run would return; the plan, the due list, the baseline and the counts are
still made by the runner after the read, as always.

The politeness bound is set by the per-host limits, so every second before the first request is pure
overhead: after each batch of articles the read pass adds (``on_batch``), the URLs it names for the first
time that are due go to a :class:`~pipeline.check.stream.CheckStream` with the body size their role asks
for (a page's head, an image's first bytes, else none) and their stored validators. When the read is
over, the rest of the sequential check's list goes after them: URLs whose role changed (seen in an image
field, then in a page field), the baseline and the canaries. A dry run (its plan is printed before any
request) and a check on Celery workers (``executor: celery``) keep the sequential order.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Container

from pipeline.checkprocess import CheckProcess, spawn
from pipeline.config import Settings
from pipeline.console import Progress
from pipeline.extract.pages import PageReader
from pipeline.health import verdict
from pipeline.models import Observation, RunOptions, UrlHistory
from pipeline.plan import Roles
from pipeline.readpass import Corpus
from pipeline.runstate import Run


def eligible(settings: Settings, options: RunOptions) -> bool:
    """Whether this run's checks may start during its read pass: a local check (``executor: local``)
    that is not a dry run."""
    return settings.executor == "local" and not options.dry_run


def body_sizes(run: Run) -> tuple[int, int] | None:
    """The bytes read of a due page and of a due image, or None when no body is read.

    A --check-only run still reads the pages it requests (one GET instead of a HEAD) and stores their
    metadata, so the next run applies it without asking again.
    """
    settings = run.settings
    if settings.metadata.enabled or run.options.mode == "check-only":
        return settings.http.max_page_bytes, settings.metadata.images.max_probe_bytes
    return None


# While the read pass and the check share the interpreter lock, a thread that wants it waits up to this long
# for the other to let go (Python's default: 5 ms). The check's event loop wakes for every answer, and the
# next request of that connection waits for it: with the default, the read pass stretched the check by
# about a tenth on `pipeline bench --check-only`. Restored when the check is over.
_SWITCH_INTERVAL = 0.0005

# What the feed knows of each URL it met, in one map (a set per fact cost about 40 bytes a URL each).
_SEEN, _PAGE, _IMAGE, _DUE, _EXCLUDED = 1, 2, 4, 8, 16


class _Marked(Container[str]):
    """The URLs of a feed's map with ``bit`` set (the digest asks whether a URL is a page or an image)."""

    __slots__ = ("_bit", "_flags")

    def __init__(self, flags: dict[str, int], bit: int) -> None:
        self._flags, self._bit = flags, bit

    def __contains__(self, url: object) -> bool:
        return bool(self._flags.get(url, 0) & self._bit)  # type: ignore[call-overload]


class Feed:
    """Hands the due URLs of each batch of articles read to the check, which runs meanwhile."""

    def __init__(self, run: Run, progress: Progress) -> None:
        self.run = run
        self.progress = progress
        self.roles = Roles(run.settings)
        self.sizes = body_sizes(run)
        # Grown as URLs are handed over, read by the digest as observations arrive: URL -> _SEEN | _PAGE …
        self.flags: dict[str, int] = {}
        self.sent: dict[str, int | None] = {}  # URL -> the body size it was handed over with
        # The stored history of the URLs seen, loaded a batch at a time: the plan reads it, not the store.
        self.history: dict[str, UrlHistory] = {}
        self.digest = PageReader(_Marked(self.flags, _PAGE), _Marked(self.flags, _IMAGE), progress)
        self.stream: CheckProcess = spawn()
        if run.options.show_progress:
            progress.start(0, "checking links")
        self.started = time.perf_counter()
        self.stream.start(
            run.settings,
            on_result=self.digest,
            keep_pages=False,
            host_stats=run.host_stats,
            stop=run.options.stop,
        )
        self._switch_interval: float | None = sys.getswitchinterval()  # set once there is a check to cancel
        sys.setswitchinterval(min(_SWITCH_INTERVAL, self._switch_interval))

    def __call__(self, corpus: Corpus, paths: list[str]) -> None:
        """The read pass's ``on_batch``: check the due URLs these articles (their paths' text) name."""
        run = self.run
        new: list[str] = []
        changed: list[str] = []
        flags, role_of, table = self.flags, self.roles.of_path, corpus.refs
        for path in paths:
            for url, field in table.cited_urls(path):  # read in place: no ``LinkRef`` a ref
                known = flags.get(url, 0)
                if known & _EXCLUDED:
                    continue
                if not known & _SEEN:
                    if run.rules.skip_reason(url) is not None:
                        flags[url] = _EXCLUDED
                        continue
                    known |= _SEEN
                    new.append(url)
                role = role_of(field)
                if role == "page" and not known & _PAGE:
                    known = (known | _PAGE) & ~_IMAGE
                    changed.append(url)
                elif role == "image" and not known & (_PAGE | _IMAGE):
                    known |= _IMAGE
                    changed.append(url)
                flags[url] = known
        history = run.store.load(new)
        self.history.update(history)
        for url in new:
            if verdict.is_due(history.get(url), run.settings.health, run.started, run.options.force):
                flags[url] |= _DUE
        batch = [url for url in dict.fromkeys([*new, *changed]) if flags[url] & _DUE]
        self._send([url for url in batch if self.sent.get(url, -1) != self._size(url)])

    def history_of(self, urls: list[str]) -> dict[str, UrlHistory]:
        """The stored history of ``urls`` (the plan's), in their order: the batches' loads, the URLs no
        batch saw loaded now. Handed over once: the feed keeps none of it.

        Nothing records a verdict between the read pass and the plan, so the batches' loads are current.
        """
        loaded, self.history = self.history, {}
        loaded.update(self.run.store.load([url for url in urls if not self.flags.get(url, 0) & _SEEN]))
        return {url: past for url in urls if (past := loaded.get(url)) is not None}

    def _size(self, url: str) -> int | None:
        if self.sizes is None:
            return None
        known = self.flags.get(url, 0)
        if known & _PAGE:
            return self.sizes[0]
        return self.sizes[1] if known & _IMAGE else None

    def _send(self, urls: list[str]) -> None:
        if not urls:
            return
        sizes = {url: self._size(url) for url in urls}
        fetch_body = {url: size for url, size in sizes.items() if size is not None}
        validators = self.run.store.validators([url for url in fetch_body if self.flags[url] & _PAGE])
        self.sent.update(sizes)
        self.stream.put(urls, fetch_body, validators)
        if self.run.options.show_progress:
            self.progress.set_total(len(self.sent))

    def finish(self) -> tuple[dict[str, Observation], float]:
        """After the plan: the rest of the check's list, then every observation and the seconds taken."""
        run = self.run
        flags = self.flags
        for url in run.plan.page_urls:
            flags[url] = flags.get(url, 0) | _PAGE
        for url in run.plan.image_urls:
            if not flags.get(url, 0) & _PAGE:
                flags[url] = flags.get(url, 0) | _IMAGE
        to_check = list(dict.fromkeys([*run.due, *run.extra]))
        rest = [url for url in to_check if url not in self.sent or self.sent[url] != run.fetch_body.get(url)]
        self.sent.update({url: run.fetch_body.get(url) for url in rest})
        if rest:
            fetch_body = {url: run.fetch_body[url] for url in rest if url in run.fetch_body}
            self.stream.put(rest, fetch_body, {u: v for u, v in run.validators.items() if u in fetch_body})
            if run.options.show_progress:
                self.progress.set_total(len(self.sent))
        observations = self.stream.finish(run.early)  # the answered URLs' rows staged meanwhile
        self._restore_switch_interval()
        self.digest.drain()
        for url, known in flags.items():
            if known & _PAGE:
                self.digest.probes.pop(url, None)  # measured as an image before it was seen as a page
        # The plan's sets say the same from now on; this pass's own bookkeeping is not kept for the report.
        self.digest.page_urls, self.digest.image_urls = run.plan.page_urls, run.plan.image_urls
        flags.clear()
        self.history.clear()  # a plan that did not take it (the run stopped)
        self.sent.clear()
        wanted = set(to_check)
        for url in [url for url in observations if url not in wanted]:
            del observations[url]  # in place, not a copy of every observation beside them
        return observations, time.perf_counter() - self.started

    def cancel(self) -> None:
        """Stop the check now (a stop request, or the read pass failed); idempotent."""
        self.stream.cancel()
        self._restore_switch_interval()

    def _restore_switch_interval(self) -> None:
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
