"""What a worker hands back, as JSON: an observation (its page body left out), the page metadata or image
probe read from it, and the check's per-host figures.

Reads: nothing. Returns: :class:`Observed` records and JSON text; ``decode(encode(x)) == x`` for every
record (tests/test_distributed_codec.py). The text is ASCII (``ensure_ascii``), so any string, a NUL or a
lone surrogate included, survives a PostgreSQL ``TEXT`` column.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from pipeline.models import ImageMeta, ImageProbe, Observation, Outcome, PageMeta, Validators
from pipeline.runreport import HostStats


@dataclass(frozen=True, slots=True)
class Observed:
    """One URL as a worker saw it: the request's outcome and what its page or image showed."""

    observation: Observation  # without its page body: bodies never leave the worker
    page: PageMeta | None = None  # the page was fit to supply metadata
    validators: Validators | None = None  # that page's (ETag, Last-Modified)
    probe: ImageProbe | None = None  # the URL is an image the run probes
    refused: str | None = None  # why the page cannot supply metadata (an error page, a login wall …)
    worker: str = ""  # the worker that made the request: its network is judged apart (the outage guard)


def _observation(data: dict[str, Any]) -> Observation:
    return Observation(
        url=data["url"],
        outcome=Outcome(data["outcome"]),
        http_status=data["http_status"],
        final_url=data["final_url"],
        redirects=tuple(data["redirects"]),
        reason=data["reason"],
        network_level=data["network_level"],
        host=data["host"],
        elapsed=data["elapsed"],
    )


def _page(data: dict[str, Any]) -> PageMeta:
    images = tuple(ImageMeta(**image) for image in data["images"])
    return PageMeta(**{**data, "images": images})


def encode(observed: Observed) -> str:
    """The record as JSON text (ASCII)."""
    obs = replace(observed.observation, page=None)
    data = {
        "observation": {**asdict(obs), "outcome": obs.outcome.value, "page": None},
        "page": asdict(observed.page) if observed.page is not None else None,
        "validators": list(observed.validators) if observed.validators is not None else None,
        "probe": asdict(observed.probe) if observed.probe is not None else None,
        "refused": observed.refused,
        "worker": observed.worker,
    }
    return json.dumps(data, separators=(",", ":"))


def decode(text: str) -> Observed:
    """The record :func:`encode` wrote."""
    data = json.loads(text)
    validators = data["validators"]
    return Observed(
        observation=_observation(data["observation"]),
        page=_page(data["page"]) if data["page"] is not None else None,
        validators=(validators[0], validators[1]) if validators is not None else None,
        probe=ImageProbe(**data["probe"]) if data["probe"] is not None else None,
        refused=data["refused"],
        worker=data.get("worker", ""),  # rows of a worker that predates the field
    )


def encode_stats(stats: dict[str, HostStats]) -> str:
    """A shard's per-host figures as JSON text."""
    return json.dumps([item.to_json() for item in stats.values()], separators=(",", ":"))


def decode_stats(text: str) -> dict[str, HostStats]:
    """The per-host figures :func:`encode_stats` wrote, keyed by host."""
    return {item["host"]: HostStats.from_json(item) for item in json.loads(text)}
