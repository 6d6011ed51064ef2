"""What a worker hands back, as JSON: an observation (its page body left out), the page metadata or image
probe read from it, and the check's per-host figures.

Reads: nothing. Returns: :class:`Observed` records and JSON text; ``decode(encode(x)) == x`` for every
record (tests/test_distributed_codec.py). The text is ASCII (``ensure_ascii``), so any string, a NUL or a
lone surrogate included, survives a PostgreSQL ``TEXT`` column.

Why positional arrays: a worker encodes one record per URL on its check's hot path, and
``dataclasses.asdict`` with field names cost about ten times as much as the request's own bookkeeping;
each record's fields, in their declared order (read from the dataclasses), are one JSON array tagged with
:data:`VERSION`. A field added to or removed from those records changes the array: bump :data:`VERSION`
then, and keep reading the older one, or a worker and a coordinator one release apart refuse each other.
The keyed objects of version 1 (a worker of an earlier release still running during an upgrade) are still
read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from pipeline.models import ImageMeta, ImageProbe, Observation, Outcome, PageMeta, Validators
from pipeline.runreport import HostStats

VERSION = 2


@dataclass(frozen=True, slots=True)
class Observed:
    """One URL as a worker saw it: the request's outcome and what its page or image showed."""

    observation: Observation  # without its page body: bodies never leave the worker
    page: PageMeta | None = None  # the page was fit to supply metadata
    validators: Validators | None = None  # that page's (ETag, Last-Modified)
    probe: ImageProbe | None = None  # the URL is an image the run probes
    refused: str | None = None  # why the page cannot supply metadata (an error page, a login wall …)
    worker: str = ""  # the worker that made the request: its network is judged apart (the outage guard)


def _names(kind: type, leave_out: str = "") -> tuple[str, ...]:
    return tuple(item.name for item in fields(kind) if item.name != leave_out)


_OBSERVATION = _names(Observation, "page")  # the body is never sent
_PAGE = _names(PageMeta)
_IMAGE = _names(ImageMeta)
_PROBE = _names(ImageProbe)
_observation_values = attrgetter(*_OBSERVATION)
_page_values = attrgetter(*_PAGE)
_image_values = attrgetter(*_IMAGE)
_probe_values = attrgetter(*_PROBE)
_OUTCOMES = {outcome.value: outcome for outcome in Outcome}
_OUTCOME_AT, _REDIRECTS_AT = _OBSERVATION.index("outcome"), _OBSERVATION.index("redirects")
# decode builds an Observation by position from the sent fields: the one left out must be the last.
assert _names(Observation)[-1] == "page"


def encode(observed: Observed) -> str:
    """The record as JSON text (ASCII): ``[VERSION, observation, page, validators, probe, refused,
    worker]``, each record an array of its fields."""
    page = observed.page
    page_values: list[Any] | None = None
    if page is not None:
        page_values = list(_page_values(page))
        page_values[_PAGE.index("images")] = [_image_values(image) for image in page.images]
    probe = observed.probe
    return json.dumps(
        [
            VERSION,
            _observation_values(observed.observation),  # an Outcome is a str: written as its value
            page_values,
            observed.validators,
            _probe_values(probe) if probe is not None else None,
            observed.refused,
            observed.worker,
        ],
        separators=(",", ":"),
    )


def decode(text: str) -> Observed:
    """The record :func:`encode` wrote (or a version 1 object)."""
    data = json.loads(text)
    if isinstance(data, dict):
        return _decode_v1(data)
    version, observation, page, validators, probe, refused, worker = data
    if version != VERSION:
        raise ValueError(f"an observation row of format {version!r}; this release reads {VERSION}")
    if len(observation) != len(_OBSERVATION):
        raise ValueError(
            f"an observation of {len(observation)} fields; this release reads {len(_OBSERVATION)}"
        )
    # By position (the coordinator decodes every row; keywords through a dict cost twice as much).
    outcome = observation[_OUTCOME_AT]
    observation[_OUTCOME_AT] = _OUTCOMES.get(outcome) or Outcome(outcome)
    observation[_REDIRECTS_AT] = tuple(observation[_REDIRECTS_AT])
    return Observed(
        Observation(*observation),
        _page(dict(zip(_PAGE, page, strict=True))) if page is not None else None,
        (validators[0], validators[1]) if validators is not None else None,
        ImageProbe(*probe) if probe is not None else None,
        refused,
        worker,
    )


def _page(data: dict[str, Any]) -> PageMeta:
    images = tuple(
        ImageMeta(**(image if isinstance(image, dict) else dict(zip(_IMAGE, image, strict=True))))
        for image in data["images"]
    )
    return PageMeta(**{**data, "images": images})


def _decode_v1(data: dict[str, Any]) -> Observed:
    """A record of version 1: keyed objects (``dataclasses.asdict``)."""
    obs, validators = data["observation"], data["validators"]
    return Observed(
        observation=Observation(
            url=obs["url"],
            outcome=Outcome(obs["outcome"]),
            http_status=obs["http_status"],
            final_url=obs["final_url"],
            redirects=tuple(obs["redirects"]),
            reason=obs["reason"],
            network_level=obs["network_level"],
            host=obs["host"],
            elapsed=obs["elapsed"],
        ),
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
