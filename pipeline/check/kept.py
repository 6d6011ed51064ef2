"""What a check keeps of each observation until the verdicts (:class:`Kept`).

Reads and writes nothing; settings: none. A run keeps every due URL's observation from its answer to the
verdicts (hundreds of thousands on a large corpus), so the kept one holds no page body (unless asked),
its final URL is the URL itself when the two are equal, and its reason and host key are one string for
equal values (a few phrases and hosts for many URLs; observations unpickled from the check's process
each bring their own copies).
"""

from __future__ import annotations

from dataclasses import replace

from pipeline.models import Observation


class Kept:
    """Makes the kept form of each observation, sharing equal strings across the observations it saw."""

    def __init__(self, keep_pages: bool) -> None:
        self.keep_pages = keep_pages
        self._texts: dict[str, str] = {}

    def __call__(self, obs: Observation) -> Observation:
        page = obs.page if self.keep_pages else None
        final = obs.url if obs.final_url == obs.url else obs.final_url
        reason = self._texts.setdefault(obs.reason, obs.reason)
        host = self._texts.setdefault(obs.host, obs.host)
        if page is obs.page and final is obs.final_url and reason is obs.reason and host is obs.host:
            return obs
        return replace(obs, page=page, final_url=final, reason=reason, host=host)
