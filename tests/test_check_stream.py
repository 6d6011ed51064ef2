"""The check fed in batches (pipeline/check/stream.py) against a real local server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from localsite import LocalSite, make_settings

from pipeline.check import check_links_sync
from pipeline.check.stream import CheckStream
from pipeline.errors import Interrupted
from pipeline.models import Observation

HTML = {"Content-Type": "text/html; charset=utf-8"}


def _outcomes(found: dict[str, Observation]) -> dict[str, tuple[str, int | None, str | None]]:
    return {url: (obs.outcome.value, obs.http_status, obs.final_url) for url, obs in found.items()}


def test_batches_observe_what_one_call_observes(local_site: LocalSite, tmp_path: Path) -> None:
    """URLs handed over in batches, new hosts included, give the observations of one check_links call."""
    local_site.route("/ok", body=b"fine")
    local_site.route("/gone", status=404)
    local_site.route("/moved", status=301, headers={"Location": local_site.url("/ok", 1)})
    settings = make_settings(tmp_path)
    first = [local_site.url("/ok"), local_site.url("/gone")]
    second = [local_site.url("/moved"), local_site.url("/ok", 2), "http://", local_site.url("/gone", 1)]
    expected = check_links_sync([*first, *second], settings)

    seen: list[str] = []
    stream = CheckStream(settings, on_result=lambda obs: seen.append(obs.url))
    stream.start()
    stream.put(first, {}, {})
    time.sleep(0.1)  # the first batch is under way before the second comes
    stream.put(second, {}, {})
    found = stream.finish()

    assert _outcomes(found) == _outcomes(expected)
    assert sorted(seen) == sorted({*first, *second})


def test_a_url_asked_again_for_its_body_is_requested_again(local_site: LocalSite, tmp_path: Path) -> None:
    """A URL already requested without a body, handed over again wanting one, is fetched again (GET)."""
    local_site.route("/p", body=b"<html><head><title>P</title></head></html>", headers=HTML)
    settings = make_settings(tmp_path, http={"soft404_probe": False})
    url = local_site.url("/p")
    stream = CheckStream(settings, keep_pages=True)
    stream.start()
    stream.put([url], {}, {})
    deadline = time.monotonic() + 5
    while local_site.count("/p") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    stream.put([url], {url: settings.http.max_page_bytes}, {})
    found = stream.finish()

    assert local_site.count("/p", "HEAD") == 1 and local_site.count("/p", "GET") == 1
    page = found[url].page
    assert page is not None and b"<title>P</title>" in page.body


def test_a_stop_request_cancels_the_stream(local_site: LocalSite, tmp_path: Path) -> None:
    """With stop set, finish cancels the checks and raises Interrupted instead of waiting for them."""
    import threading

    local_site.route("/slow", body=b"late", delay=3.0)
    stop = threading.Event()
    stream = CheckStream(make_settings(tmp_path), stop=stop)
    stream.start()
    stream.put([local_site.url("/slow")], {}, {})
    stop.set()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        stream.finish()
    assert time.monotonic() - started < 1.5


def test_unkept_observations_reach_only_the_callback(local_site: LocalSite, tmp_path: Path) -> None:
    """With keep_observations=False the callback sees every URL; finish returns only unrequestable ones."""
    local_site.route("/ok", body=b"fine")
    settings = make_settings(tmp_path)
    seen: list[str] = []
    stream = CheckStream(settings, on_result=lambda obs: seen.append(obs.url), keep_observations=False)
    stream.start()
    stream.put([local_site.url("/ok"), "http://"], {}, {})
    found = stream.finish()

    assert sorted(seen) == sorted([local_site.url("/ok"), "http://"])
    assert list(found) == ["http://"]


def test_a_batch_that_ended_the_check_is_the_error_finish_raises(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a batch ends the check before ``finish`` (its loop closed), later batches are let go and
    ``finish`` raises that batch's error, not that the loop is closed."""
    from pipeline.check import stream as stream_module

    def broken_add(*args: object, **kwargs: object) -> None:
        raise KeyError("inside the check")

    monkeypatch.setattr(stream_module._Session, "add", broken_add)
    stream = CheckStream(make_settings(tmp_path))
    stream.start()
    stream.put([local_site.url("/one")], {}, {})
    stream._thread.join(timeout=10)  # the loop has ended, as it may before the caller's next call
    assert not stream._thread.is_alive()
    stream.put([local_site.url("/two")], {}, {})
    with pytest.raises(KeyError, match="inside the check"):
        stream.finish()
