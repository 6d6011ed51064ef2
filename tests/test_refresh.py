"""End-to-end refresh on a tmp corpus against real loopback servers: exact diffs, across runs."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from localsite import LocalSite, closed_port, make_settings
from PIL import Image

from pipeline.config import Settings
from pipeline.health.history import HistoryStore
from pipeline.models import ExitCode, RunOptions
from pipeline.report.schema import validate_report
from pipeline.runner import refresh

DAY0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
DESCRIPTION = "Local officials approved the new riverside park after two years of debate."


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _page(title: str, image: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title>"
        f'<meta property="og:title" content="{title}">'
        f'<meta property="og:description" content="{DESCRIPTION}">'
        f'<meta property="og:image" content="{image}">'
        "</head><body><p>Story.</p></body></html>"
    ).encode()


HTML = {"Content-Type": "text/html; charset=utf-8"}
PNG = {"Content-Type": "image/png"}


def _serve_world(site: LocalSite) -> None:
    site.route("/story", body=_page("Park approved", "/img/share.png"), headers=HTML)
    site.route("/story2", body=_page("Second story", "/img/share.png"), headers=HTML)
    site.route("/story3", body=_page("Third story", "/img/share.png"), headers=HTML)
    site.route("/img/share.png", body=_png(640, 480), headers=PNG)
    site.route("/img/real.png", body=_png(300, 200), headers=PNG)
    site.route("/gone", status=404)
    site.route("/img/old.jpg", status=404)
    site.route("/img/missing.jpg", status=410)


def _article(site: LocalSite) -> str:
    return f"""---
title: "Park approved"
excerpt: ""
webUrl: "{site.url("/story")}"
type: article
related:
  - title: "Gone"
    webUrl: "{site.url("/gone", 1)}"
    images:
      - url: "{site.url("/img/old.jpg", 1)}"
        width: 100
        height: 100
  - title: "Second"
    webUrl: "{site.url("/story2")}"
    excerpt: "Kept as the editor wrote it."
    images:
      - url: "{site.url("/img/real.png", 1)}"
        width: 1
        height: 200
        isCached: true
  - title: "Third"
    webUrl: "{site.url("/story3")}"
    excerpt: 'Kept too.'
    images:
      - url: "{site.url("/img/missing.jpg", 1)}"
        width: 10
        height: 10
---
Body stays exactly as it is.
"""


@pytest.fixture
def world(local_site: LocalSite, tmp_path: Path) -> tuple[LocalSite, Path, Settings]:
    _serve_world(local_site)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "park.md").write_text(_article(local_site), encoding="utf-8")
    (corpus / "untouched.md").write_text(
        '---\ntitle: "No links here"\nyes: on\n---\nbody\n', encoding="utf-8"
    )
    settings = make_settings(
        tmp_path, corpus={"roots": [str(corpus)]}, health={"hard": {"runs": 1, "days": 0}}
    )
    return local_site, corpus, settings


def _run(settings: Settings, now: datetime, **options: object) -> dict[str, object]:
    outcome = refresh(settings, RunOptions(now=lambda: now, show_progress=False, **options), io.StringIO())  # type: ignore[arg-type]
    assert outcome.exit_code is ExitCode.OK
    return outcome.report.to_json()


def test_refresh_changes_only_what_the_evidence_supports(world: tuple[LocalSite, Path, Settings]) -> None:
    """One run: excerpt filled, sizes corrected, a dead image replaced, dead links flagged; nothing else."""
    site, corpus, settings = world
    before = (corpus / "park.md").read_text(encoding="utf-8")
    untouched = corpus / "untouched.md"
    untouched_stat = untouched.stat()

    report = _run(settings, DAY0)

    after = (corpus / "park.md").read_text(encoding="utf-8")
    share = site.url("/img/share.png")
    expected = (
        before.replace('excerpt: ""', f'excerpt: "{DESCRIPTION}"')
        .replace("width: 1\n", "width: 300\n")
        .replace(
            f'url: "{site.url("/img/missing.jpg", 1)}"\n        width: 10\n        height: 10',
            f'url: "{share}"\n        width: 640\n        height: 480',
        )
        .replace(
            "---\nBody",
            f'images:\n  - url: "{share}"\n    width: 640\n    height: 480\n'
            "linkHealth:\n"
            f'  - field: related[0].webUrl\n    url: "{site.url("/gone", 1)}"\n'
            '    status: dead\n    since: "2026-11-01"\n'
            f'  - field: related[0].images[0].url\n    url: "{site.url("/img/old.jpg", 1)}"\n'
            '    status: dead\n    since: "2026-11-01"\n'
            "---\nBody",
        )
    )
    assert after == expected
    assert untouched.stat().st_mtime_ns == untouched_stat.st_mtime_ns
    totals = report["totals"]
    assert isinstance(totals, dict)
    assert totals["dead"] == 3 and totals["changes"] == 8
    # Each unique URL was requested once in the check phase, the page served link check and metadata.
    assert site.count("/story", "GET") == 1 and site.count("/story", "HEAD") == 0


def test_second_night_with_nothing_new_changes_no_byte(world: tuple[LocalSite, Path, Settings]) -> None:
    """A second run on an unchanged web writes nothing: same bytes, same mtime."""
    _, corpus, settings = world
    _run(settings, DAY0)
    path = corpus / "park.md"
    raw, mtime = path.read_bytes(), path.stat().st_mtime_ns
    gets = world[0].count("/story", "GET")
    report = _run(settings, DAY0 + timedelta(days=1))
    assert path.read_bytes() == raw and path.stat().st_mtime_ns == mtime
    assert report["changes"] == []
    assert world[0].count("/story", "GET") == gets  # ok and not due: not fetched again


def test_recovered_links_lose_their_flags(world: tuple[LocalSite, Path, Settings]) -> None:
    """When dead links answer again, their linkHealth entries and then the block disappear."""
    site, corpus, settings = world
    _run(settings, DAY0)
    site.route("/gone", body=_page("Back again", "/img/share.png"), headers=HTML)
    site.route("/img/old.jpg", body=_png(100, 100), headers=PNG)
    report = _run(settings, DAY0 + timedelta(days=1))
    text = (corpus / "park.md").read_text(encoding="utf-8")
    assert "linkHealth" not in text
    assert text.endswith("height: 480\n---\nBody stays exactly as it is.\n")
    totals = report["totals"]
    assert isinstance(totals, dict) and totals["recovered"] == 2


def test_dead_needs_runs_over_days(tmp_path: Path, local_site: LocalSite) -> None:
    """With the default 3 runs over 3 days, a 404 is failing twice, then dead on day 3, then flagged."""
    local_site.route("/gone", status=404)
    corpus = tmp_path / "c"
    corpus.mkdir()
    path = corpus / "a.md"
    path.write_text(f'---\ntitle: a\nwebUrl: "{local_site.url("/gone")}"\n---\n', encoding="utf-8")
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]})
    statuses = []
    for day in (0, 1, 3):
        report = _run(settings, DAY0 + timedelta(days=day))
        links = report["links"]
        assert isinstance(links, list)
        statuses.append(links[0]["status"])
    assert statuses == ["failing", "failing", "dead"]
    assert "linkHealth:\n  - field: webUrl\n" in path.read_text(encoding="utf-8")


def test_outage_records_nothing_and_flags_nothing(tmp_path: Path) -> None:
    """When every host refuses connections, the run says outage and leaves files and history as they were."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    lines = [f'  - webUrl: "http://127.0.0.{20 + i}:{closed_port(f"127.0.0.{20 + i}")}/x"' for i in range(4)]
    path = corpus / "a.md"
    path.write_text("---\ntitle: a\nrelated:\n" + "\n".join(lines) + "\n---\n", encoding="utf-8")
    raw = path.read_bytes()
    settings = make_settings(
        tmp_path, corpus={"roots": [str(corpus)]}, health={"hard": {"runs": 1, "days": 0}}
    )
    report = _run(settings, DAY0)
    run = report["run"]
    assert isinstance(run, dict) and "all 4 hosts failed below HTTP" in run["outage"]
    assert path.read_bytes() == raw
    with HistoryStore(settings.state.database) as store:
        assert store.load([]) == {}
        history = store.load(["http://127.0.0.20/x"])
    assert history == {}


def test_dry_run_prints_plan_and_diff_and_writes_nothing(world: tuple[LocalSite, Path, Settings]) -> None:
    """--dry-run prints what it would check and the unified diff; no file, history or report is written."""
    site, corpus, settings = world
    raw = (corpus / "park.md").read_bytes()
    out = io.StringIO()
    outcome = refresh(settings, RunOptions(now=lambda: DAY0, show_progress=False, dry_run=True), out)
    printed = out.getvalue()
    assert f"check  {site.url('/story')}" in printed
    assert f'+excerpt: "{DESCRIPTION}"' in printed and '-excerpt: ""' in printed
    assert (corpus / "park.md").read_bytes() == raw
    assert outcome.report_dir is None and not settings.reports.dir.exists()
    assert not settings.state.dir.exists()


def test_report_files_are_written(world: tuple[LocalSite, Path, Settings]) -> None:
    """A run writes report.json/md/html in its own folder and `latest`; JSON lists every URL with articles."""
    _, _, settings = world
    report = _run(settings, DAY0)
    latest = settings.reports.dir / "latest"
    data = json.loads((latest / "report.json").read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(report))
    validate_report(data)
    assert (latest / "report.md").read_text(encoding="utf-8").startswith("#")
    assert "<html" in (latest / "report.html").read_text(encoding="utf-8")
    gone = [link for link in data["links"] if link["url"].endswith("/gone")]
    assert gone[0]["articles"][0]["field_paths"] == ["related[0].webUrl"]


def _corpus_of(tmp_path: Path, urls: list[str]) -> Path:
    corpus = tmp_path / "c"
    corpus.mkdir(exist_ok=True)
    lines = "".join(f'  - webUrl: "{url}"\n' for url in urls)
    (corpus / "a.md").write_text(f"---\ntitle: a\nrelated:\n{lines}---\n", encoding="utf-8")
    return corpus


def _statuses(report: dict[str, object]) -> dict[str, str]:
    links = report["links"]
    assert isinstance(links, list)
    return {link["url"]: link["status"] for link in links}


def test_healthy_hosts_are_a_baseline_so_real_failures_count(tmp_path: Path, local_site: LocalSite) -> None:
    """Nights where only failing links are due still count: a few healthy hosts are re-checked as baseline."""
    local_site.route("/up", body=b"ok")
    refused = [f"http://127.0.0.{20 + i}:{closed_port(f'127.0.0.{20 + i}')}/x" for i in range(3)]
    healthy = [local_site.url("/up", 0), local_site.url("/up", 1)]
    corpus = _corpus_of(tmp_path, [*refused, *healthy])
    settings = make_settings(
        tmp_path,
        corpus={"roots": [str(corpus)]},
        health={"soft": {"runs": 2, "days": 1}},
        retry={"attempts": 1},
    )
    first = _run(settings, DAY0)
    second = _run(settings, DAY0 + timedelta(days=1))
    run = second["run"]
    assert isinstance(run, dict) and run["outage"] is None
    assert [_statuses(second)[url] for url in refused] == ["dead"] * 3
    assert _statuses(first)[healthy[0]] == "ok"
    # One URL per healthy host was re-checked on night two although it was not due.
    assert local_site.count("/up", host_index=0) == 2 and local_site.count("/up", host_index=1) == 2


def test_our_network_down_after_history_is_an_outage(tmp_path: Path) -> None:
    """When the hosts that answered before stop answering, failures are not evidence: no false dead."""
    from localsite import serving

    with serving(hosts=4, first_address=70) as site:
        site.route("/up", body=b"ok")
        site.route("/flaky", status=503)
        urls = [site.url("/flaky", 0)] + [site.url("/up", i) for i in (1, 2, 3)]
        corpus = _corpus_of(tmp_path, urls)
        raw = (corpus / "a.md").read_bytes()
        settings = make_settings(
            tmp_path,
            corpus={"roots": [str(corpus)]},
            health={"soft": {"runs": 2, "days": 1}},
            retry={"attempts": 1},
        )
        _run(settings, DAY0)
    # The servers are gone: every connection is refused, as when our own network is down.
    report = _run(settings, DAY0 + timedelta(days=2))
    run = report["run"]
    assert isinstance(run, dict) and "hosts that answered before failed below HTTP" in run["outage"]
    assert _statuses(report)[urls[0]] == "failing"
    assert (corpus / "a.md").read_bytes() == raw


def test_fresh_canary_is_still_requested(tmp_path: Path, local_site: LocalSite) -> None:
    """A canary that an article also links to is requested every run, due or not."""
    local_site.route("/canary", body=b"ok")
    canary = local_site.url("/canary")
    corpus = _corpus_of(tmp_path, [canary])
    settings = make_settings(
        tmp_path, corpus={"roots": [str(corpus)]}, health={"outage": {"canary_urls": [canary]}}
    )
    _run(settings, DAY0)
    _run(settings, DAY0 + timedelta(days=1))
    assert local_site.count("/canary") == 2


def test_redirect_to_front_page_supplies_no_metadata(tmp_path: Path, local_site: LocalSite) -> None:
    """A removed story redirected to the home page does not fill the excerpt with the home page's text."""
    local_site.route("/", body=_page("Home", "/img/share.png"), headers=HTML)
    local_site.route("/old-story", status=302, headers={"Location": "/"})
    corpus = tmp_path / "c"
    corpus.mkdir()
    path = corpus / "a.md"
    path.write_text(f'---\ntitle: a\nexcerpt: ""\nwebUrl: "{local_site.url("/old-story")}"\n---\n')
    raw = path.read_bytes()
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]})
    report = _run(settings, DAY0)
    assert path.read_bytes() == raw
    links = report["links"]
    assert isinstance(links, list)
    assert (links[0]["status"], links[0]["reason"][:8]) == ("failing", "soft 404")
    assert "front page" in links[0]["reason"]


def test_a_page_that_breaks_the_parser_does_not_stop_the_run(
    world: tuple[LocalSite, Path, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception while reading one page is reported for that page; the rest of the run goes on."""
    import pipeline.extract.pages

    site, corpus, settings = world
    real_scrape = pipeline.extract.pages.scrape

    def fragile(body: bytes, url: str, headers: object = None) -> object:
        if url.endswith("/story2"):
            raise RecursionError("maximum recursion depth exceeded")
        return real_scrape(body, url, headers)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline.extract.pages, "scrape", fragile)
    report = _run(settings, DAY0)
    refused = report["refused_pages"]
    assert isinstance(refused, list)
    assert refused == [
        {
            "url": site.url("/story2"),
            "reason": "could not be read: RecursionError: maximum recursion depth exceeded",
        }
    ]
    assert f'excerpt: "{DESCRIPTION}"' in (corpus / "park.md").read_text(encoding="utf-8")


def test_one_failing_url_on_a_healthy_host_is_no_outage(tmp_path: Path, local_site: LocalSite) -> None:
    """A page timing out on a host whose other pages answer is evidence, not our network being down."""
    local_site.route("/a", body=b"ok")
    local_site.route("/slow", body=b"ok")
    corpus = _corpus_of(tmp_path, [local_site.url("/a"), local_site.url("/slow")])
    settings = make_settings(
        tmp_path,
        corpus={"roots": [str(corpus)]},
        http={"read_timeout": 0.3, "total_timeout": 1.0},
        retry={"attempts": 1},
    )
    _run(settings, DAY0)
    local_site.route("/slow", body=b"ok", delay=1.0)
    _run(settings, DAY0 + timedelta(days=8))  # both due again: /slow starts failing
    report = _run(settings, DAY0 + timedelta(days=9))  # only /slow is due; /a is re-checked as baseline
    run = report["run"]
    assert isinstance(run, dict) and run["outage"] is None
    links = {link["url"]: link for link in report["links"]}  # type: ignore[union-attr]
    assert links[local_site.url("/slow")]["consecutive_failures"] == 2
    # The baseline answer is not recorded: /a keeps its day-8 check date, so it comes due on schedule.
    assert links[local_site.url("/a")]["checked_at"].startswith("2026-11-09")
    assert local_site.count("/a") == 3


def test_missing_excerpt_is_filled_when_the_page_comes_due(tmp_path: Path, local_site: LocalSite) -> None:
    """A page that gains a description is read again when its ok verdict expires, and fills the excerpt."""
    local_site.route("/story", body=b"<html><head><title>Early</title></head></html>", headers=HTML)
    corpus = tmp_path / "c"
    corpus.mkdir()
    path = corpus / "a.md"
    path.write_text(f'---\ntitle: a\nexcerpt: ""\nimages: []\nwebUrl: "{local_site.url("/story")}"\n---\n')
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]})
    _run(settings, DAY0)
    local_site.route("/story", body=_page("Later", "/img/share.png"), headers=HTML)
    local_site.route("/img/share.png", body=_png(640, 480), headers=PNG)
    _run(settings, DAY0 + timedelta(days=1))  # not due: not requested, nothing changes yet
    assert 'excerpt: ""' in path.read_text(encoding="utf-8")
    _run(settings, DAY0 + timedelta(days=7))
    text = path.read_text(encoding="utf-8")
    assert f'excerpt: "{DESCRIPTION}"' in text and "width: 640" in text


def test_flag_goes_when_the_editor_points_the_field_elsewhere(
    world: tuple[LocalSite, Path, Settings],
) -> None:
    """A linkHealth entry whose field now holds another URL is removed the next night."""
    site, corpus, settings = world
    _run(settings, DAY0)
    path = corpus / "park.md"
    text = path.read_text(encoding="utf-8")
    gone = site.url("/gone", 1)
    head, flags = text.split("linkHealth:", 1)
    path.write_text(head.replace(gone, site.url("/story2")) + "linkHealth:" + flags, encoding="utf-8")
    _run(settings, DAY0 + timedelta(days=1))
    after = path.read_text(encoding="utf-8")
    assert "field: related[0].webUrl" not in after
    # The item now cites /story2, read yesterday: its stored share image replaces the dead one, whose
    # flag goes with it.
    assert "field: related[0].images[0].url" not in after
    assert after.count(site.url("/img/share.png")) == 3  # related[2] got it on the first night


def _one_page_corpus(tmp_path: Path, site: LocalSite, names: tuple[str, ...]) -> tuple[Path, Settings]:
    site.route("/story", body=_page("Park approved", "/img/share.png"), headers=HTML)
    site.route("/img/share.png", body=_png(640, 480), headers=PNG)
    corpus = tmp_path / "c"
    corpus.mkdir(exist_ok=True)
    for name in names:
        (corpus / name).write_text(f'---\ntitle: a\nexcerpt: ""\nwebUrl: "{site.url("/story")}"\n---\n')
    return corpus, make_settings(tmp_path, corpus={"roots": [str(corpus)]})


def test_a_new_article_gets_stored_metadata_without_a_new_request(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """An article citing a page read yesterday (not due today) gets its excerpt and image tonight."""
    corpus, settings = _one_page_corpus(tmp_path, local_site, ("a.md",))
    _run(settings, DAY0)
    requests = local_site.count("/story", "GET")
    (corpus / "b.md").write_text(f'---\ntitle: b\nexcerpt: ""\nwebUrl: "{local_site.url("/story")}"\n---\n')

    _run(settings, DAY0 + timedelta(days=1))

    text = (corpus / "b.md").read_text(encoding="utf-8")
    assert f'excerpt: "{DESCRIPTION}"' in text
    assert "width: 640" in text and "height: 480" in text
    assert (
        local_site.count("/story", "GET") == requests
    )  # the page is not read again (a HEAD may check the network)


def test_check_only_run_stores_metadata_that_the_next_run_writes(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """--check-only writes no metadata, but the next run writes it from the store without asking again."""
    corpus, settings = _one_page_corpus(tmp_path, local_site, ("a.md",))
    before = (corpus / "a.md").read_bytes()
    check_only = settings.model_copy(
        update={"metadata": settings.metadata.model_copy(update={"enabled": False})}
    )
    _run(check_only, DAY0, mode="check-only")
    assert (corpus / "a.md").read_bytes() == before
    requests = local_site.count("/story", "GET")

    _run(settings, DAY0 + timedelta(hours=1))

    assert f'excerpt: "{DESCRIPTION}"' in (corpus / "a.md").read_text(encoding="utf-8")
    assert local_site.count("/story", "GET") == requests == 1


def test_a_page_that_turns_into_an_error_page_stops_supplying_metadata(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """Stored metadata is forgotten when the page, read again, looks like an error page."""
    corpus, settings = _one_page_corpus(tmp_path, local_site, ("a.md",))
    _run(settings, DAY0)
    local_site.route("/story", body=b"<html><head><title>Page not found</title></head></html>", headers=HTML)
    _run(settings, DAY0 + timedelta(days=8))
    (corpus / "b.md").write_text(f'---\ntitle: b\nexcerpt: ""\nwebUrl: "{local_site.url("/story")}"\n---\n')

    _run(settings, DAY0 + timedelta(days=9))

    assert 'excerpt: ""' in (corpus / "b.md").read_text(encoding="utf-8")


def test_a_merge_key_article_is_checked_flagged_and_its_own_fields_edited(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """Links of an article using ``<<: *base`` are checked and flagged; only the merged excerpt is refused."""
    local_site.route("/story", body=_page("Park approved", "/img/share.png"), headers=HTML)
    local_site.route("/img/share.png", body=_png(640, 480), headers=PNG)
    local_site.route("/gone", status=404)
    corpus = tmp_path / "c"
    corpus.mkdir()
    path = corpus / "merged.md"
    path.write_text(
        "---\n"
        "defaults: &d\n"
        "  excerpt: Words from the shared base\n"
        "title: Merged\n"
        "<<: *d\n"
        f'webUrl: "{local_site.url("/story")}"\n'
        "images: []\n"
        "related:\n"
        f'  - webUrl: "{local_site.url("/gone")}"\n'
        "---\n",
        encoding="utf-8",
    )
    settings = make_settings(
        tmp_path,
        corpus={"roots": [str(corpus)]},
        health={"hard": {"runs": 1, "days": 0}},
        metadata={"excerpt": {"policy": "overwrite"}},
    )

    outcome = refresh(settings, RunOptions(now=lambda: DAY0, show_progress=False), io.StringIO())

    text = path.read_text(encoding="utf-8")
    assert "  excerpt: Words from the shared base\n" in text and DESCRIPTION not in text
    assert local_site.url("/img/share.png") in text  # the article's own empty images list was filled
    assert "field: related[0].webUrl" in text
    errors = outcome.report.to_json()["errors"]
    assert outcome.exit_code is ExitCode.FILES_FAILED
    assert [e["message"] for e in errors] == [  # type: ignore[index,union-attr]
        "excerpt: the value comes through a merge key (<<); not edited"
    ]


def test_refresh_policy_replaces_an_alive_outdated_image_from_a_local_image_server(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """`images.policy: refresh`: the page's new share image replaces the old alive one, with its real size."""
    local_site.route("/story", body=_page("Park approved", "/img/new.png"), headers=HTML)
    local_site.route("/img/new.png", body=_png(800, 418), headers=PNG)
    local_site.route("/img/old.png", body=_png(300, 200), headers=PNG)
    corpus = tmp_path / "c"
    corpus.mkdir()
    path = corpus / "a.md"
    path.write_text(
        f'---\ntitle: a\nexcerpt: "{DESCRIPTION}"\nwebUrl: "{local_site.url("/story")}"\nimages:\n'
        f'  - url: "{local_site.url("/img/old.png")}"\n    width: 300\n    height: 200\n    isCached: true\n'
        "---\nbody\n",
        encoding="utf-8",
    )
    settings = make_settings(
        tmp_path, corpus={"roots": [str(corpus)]}, metadata={"images": {"policy": "refresh"}}
    )

    _run(settings, DAY0)

    assert path.read_text(encoding="utf-8") == (
        f'---\ntitle: a\nexcerpt: "{DESCRIPTION}"\nwebUrl: "{local_site.url("/story")}"\nimages:\n'
        f'  - url: "{local_site.url("/img/new.png")}"\n    width: 800\n    height: 418\n    isCached: true\n'
        "---\nbody\n"
    )
    before = path.read_bytes()
    _run(settings, DAY0 + timedelta(days=1))
    assert path.read_bytes() == before  # the next night changes nothing


def test_overwrite_writes_the_share_description_not_a_truncated_meta_one(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """The issue's page: full og/twitter/JSON-LD, cut meta description; stale gets og, current stays."""
    full = "Audit draft court naïve open open cloud robot model development, in full and with its ending."
    page = (
        "<html><head><meta charset='utf-8'><title>Audit</title>"
        f'<meta name="description" content="{full[:58]}...">'
        f'<meta property="og:description" content="{full}">'
        f'<meta name="twitter:description" content="{full}">'
        f'<script type="application/ld+json">{json.dumps({"@type": "Article", "description": full})}</script>'
        '<meta property="og:image" content="/img/share.png"></head><body><p>Story.</p></body></html>'
    )
    local_site.route("/audit", body=page.encode(), headers=HTML)
    local_site.route("/img/share.png", body=_png(640, 480), headers=PNG)
    corpus = tmp_path / "c"
    corpus.mkdir()
    url = local_site.url("/audit")
    image = f'images:\n  - url: "{local_site.url("/img/share.png")}"\n    width: 640\n    height: 480\n'
    stale = corpus / "stale.md"
    stale.write_text(f'---\ntitle: s\nexcerpt: "An old summary of it"\nwebUrl: "{url}"\n{image}---\n')
    current = corpus / "current.md"
    current.write_text(f"---\ntitle: c  # kept\nexcerpt: >-\n  {full}\nwebUrl: '{url}'\n{image}---\nBody\n")
    kept = current.read_bytes()
    settings = make_settings(
        tmp_path,
        corpus={"roots": [str(corpus)]},
        metadata={"excerpt": {"policy": "overwrite"}, "images": {"policy": "refresh"}},
    )

    _run(settings, DAY0)

    assert f'excerpt: "{full}"' in stale.read_text(encoding="utf-8")
    assert current.read_bytes() == kept


def test_a_body_fallback_is_written_and_reported_with_its_source(
    tmp_path: Path, local_site: LocalSite
) -> None:
    """A page declaring no description fills the excerpt from its first paragraph; the change says `body`."""
    prose = "The council voted on Tuesday to close the old bridge for two years of repairs, officials said."
    local_site.route(
        "/plain",
        body=f"<html><head><title>Bridge</title></head><body><nav>Home</nav><p>{prose}</p></body></html>".encode(),
        headers=HTML,
    )
    corpus = tmp_path / "c"
    corpus.mkdir()
    path = corpus / "a.md"
    path.write_text(f'---\ntitle: a\nexcerpt: ""\nwebUrl: "{local_site.url("/plain")}"\nimages: []\n---\n')
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]})

    report = _run(settings, DAY0)

    assert f'excerpt: "{prose}"' in path.read_text(encoding="utf-8")
    validate_report(report)
    changes = report["changes"]
    assert [(c["field_path"], c.get("via")) for c in changes] == [("excerpt", "body")]  # type: ignore[union-attr,index]


def test_a_settled_article_is_not_reread_until_its_file_or_evidence_changes(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write pass skips an unchanged file whose evidence is unchanged; an edited file is decided again."""
    import os

    from pipeline import readpass, write

    corpus, settings = _one_page_corpus(tmp_path, local_site, ("a.md", "b.md"))
    _run(settings, DAY0)  # writes both
    for path in corpus.iterdir():  # settled long ago: the read pass remembers them
        os.utime(path, (1_700_000_000, 1_700_000_000))
    _run(settings, DAY0 + timedelta(hours=1))  # both needed nothing: remembered as settled
    reads: list[Path] = []
    real = write.read_article

    def counting(path: Path, limit: int) -> object:
        reads.append(path)
        return real(path, limit)

    for stage in (readpass, write):  # the read pass and the write pass read the same way
        monkeypatch.setattr(stage, "read_article", counting)
    (corpus / "b.md").write_text(f'---\ntitle: b\nexcerpt: ""\nwebUrl: "{local_site.url("/story")}"\n---\n')
    reads.clear()

    _run(settings, DAY0 + timedelta(hours=2))

    assert reads == [corpus / "b.md", corpus / "b.md"]  # the read pass, then the write pass: b alone
    assert f'excerpt: "{DESCRIPTION}"' in (corpus / "b.md").read_text(encoding="utf-8")


def test_report_shows_per_host_politeness(local_site: LocalSite, tmp_path: Path) -> None:
    """A host that answered a 429 and a 503 shows both, its pause and its lowest concurrency in the report."""
    local_site.route("/a", [429, 200], headers={"Retry-After": "0"})
    local_site.route("/b", [503, 200])
    local_site.route("/c", 200)
    urls = [local_site.url(p) for p in ("/a", "/b", "/c")] + [local_site.url("/c", 1)]
    settings = make_settings(tmp_path, corpus={"roots": [str(_corpus_of(tmp_path, urls))]})
    report = _run(settings, DAY0)
    validate_report(json.loads(json.dumps(report)))
    rows = {row["host"]: row for row in report["politeness"]}  # type: ignore[attr-defined]
    busy = rows[f"{local_site.addresses[0]}:{local_site.ports[0]}"]
    assert (busy["got_429"], busy["got_503"]) == (1, 1)
    assert busy["pauses"] >= 1 and busy["lowest_concurrency"] < settings.http.per_host_concurrency
    calm = rows[f"{local_site.addresses[1]}:{local_site.ports[1]}"]
    assert (calm["got_429"], calm["pauses"], calm["lowest_concurrency"]) == (0, 0, 8)
    html = (settings.reports.dir / "latest" / "report.html").read_text(encoding="utf-8")
    assert "lowest concurrency" in html and "429s" in html


def test_recheck_with_a_stored_etag_downloads_no_body(local_site: LocalSite, tmp_path: Path) -> None:
    """The night after a page was read with an ETag, it is asked with If-None-Match: a 304 sends no body,
    the link stays ok, the report counts the 304, and the stored metadata still fills a new article."""
    local_site.route("/story", body=_page("Park approved", "/img/share.png"), headers=HTML, etag='"v1"')
    local_site.route("/img/share.png", body=_png(640, 480), headers=PNG)
    url = local_site.url("/story")
    corpus = tmp_path / "c"
    corpus.mkdir()
    article = f'---\ntitle: a\nexcerpt: ""\nwebUrl: "{url}"\n---\n'
    (corpus / "a.md").write_text(article, encoding="utf-8")
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]}, http={"soft404_probe": False})
    _run(settings, DAY0)
    first_bytes = local_site.body_bytes["/story"]
    assert first_bytes > 0 and DESCRIPTION in (corpus / "a.md").read_text(encoding="utf-8")
    (corpus / "b.md").write_text(article, encoding="utf-8")
    report = _run(settings, DAY0 + timedelta(days=1), force=True)
    assert local_site.body_bytes["/story"] == first_bytes  # the recheck downloaded nothing
    last = [h for h in local_site.hits if h.path == "/story"][-1]
    assert last.headers.get("If-None-Match") == '"v1"'
    assert _statuses(report)[url] == "ok"
    assert report["totals"]["not_modified"] == 1  # type: ignore[index]
    assert DESCRIPTION in (corpus / "b.md").read_text(encoding="utf-8")


def test_a_warm_night_parses_no_article_and_changed_evidence_is_still_decided(
    tmp_path: Path, local_site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchanged files and evidence: no parse at all; a new article's page metadata still reaches it."""
    import os

    from pipeline import readpass, write

    corpus, settings = _one_page_corpus(tmp_path, local_site, ("a.md", "b.md"))
    _run(settings, DAY0)  # writes both
    for path in corpus.iterdir():  # settled long ago, as on a real night
        os.utime(path, (1_700_000_000, 1_700_000_000))
    _run(settings, DAY0 + timedelta(hours=1))  # reads both once more: their refs and decisions are stored
    reads: list[Path] = []
    real = write.read_article

    def counting(path: Path, limit: int) -> object:
        reads.append(path)
        return real(path, limit)

    for stage in (readpass, write):
        monkeypatch.setattr(stage, "read_article", counting)

    _run(settings, DAY0 + timedelta(hours=2))

    assert reads == []
    (corpus / "c.md").write_text(f'---\ntitle: c\nexcerpt: ""\nwebUrl: "{local_site.url("/story")}"\n---\n')
    _run(settings, DAY0 + timedelta(hours=3))
    assert reads == [corpus / "c.md", corpus / "c.md"]  # read, then decided and written
    assert f'excerpt: "{DESCRIPTION}"' in (corpus / "c.md").read_text(encoding="utf-8")
    reads.clear()
    _run(settings, DAY0 + timedelta(hours=4), force=True)
    assert sorted(set(reads)) == sorted(corpus.iterdir())  # --force reads every file again
