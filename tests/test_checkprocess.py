"""The fed check in a process of its own (pipeline/checkprocess.py) against a real local server."""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from localsite import LocalSite, make_settings

from pipeline import checkprocess, overlap
from pipeline.check.stream import CheckStream
from pipeline.checkprocess import CheckProcess
from pipeline.errors import CheckProcessLost, Interrupted
from pipeline.models import ExitCode, Observation, RunOptions
from pipeline.runner import refresh
from pipeline.runreport import HostStats

HTML = {"Content-Type": "text/html; charset=utf-8"}


def _outcomes(found: dict[str, Observation]) -> dict[str, tuple[str, int | None, str | None, str]]:
    return {
        url: (obs.outcome.value, obs.http_status, obs.final_url, obs.reason) for url, obs in found.items()
    }


def _gone(pid: int, within: float = 5.0) -> bool:
    """Whether process ``pid`` has ended (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _wait_for_hit(site: LocalSite, path: str) -> None:
    deadline = time.monotonic() + 10
    while site.count(path) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert site.count(path) > 0


def test_the_process_observes_what_the_stream_observes(local_site: LocalSite, tmp_path: Path) -> None:
    """Batches handed to the check's process give the in-thread stream's observations and host figures."""
    local_site.route("/ok", body=b"fine")
    local_site.route("/gone", status=404)
    local_site.route("/moved", status=301, headers={"Location": local_site.url("/ok", 1)})
    local_site.route("/busy", status=[429, 200], headers={"Retry-After": "0"})
    settings = make_settings(tmp_path)
    first = [local_site.url("/ok"), local_site.url("/gone"), local_site.url("/busy")]
    second = [local_site.url("/moved"), local_site.url("/ok", 2), "http://", local_site.url("/gone", 1)]

    def run(stream: CheckStream | CheckProcess) -> tuple[dict[str, Observation], list[str], set[str]]:
        seen: list[str] = []
        stats: dict[str, HostStats] = {}
        if isinstance(stream, CheckProcess):
            stream.start(settings, on_result=lambda obs: seen.append(obs.url), host_stats=stats)
        else:
            stream.start()
        stream.put(first, {}, {})
        time.sleep(0.1)  # the first batch is under way before the second comes
        stream.put(second, {}, {})
        return stream.finish(), seen, set(stats)

    expected = CheckStream(settings, host_stats={})
    in_thread, _, _ = run(expected)
    local_site.reset()
    local_site.route("/ok", body=b"fine")
    local_site.route("/gone", status=404)
    local_site.route("/moved", status=301, headers={"Location": local_site.url("/ok", 1)})
    local_site.route("/busy", status=[429, 200], headers={"Retry-After": "0"})
    found, seen, hosts = run(checkprocess.spawn())

    assert _outcomes(found) == _outcomes(in_thread)
    assert sorted(seen) == sorted({*first, *second})
    assert hosts == {obs.host for obs in in_thread.values() if obs.host}
    assert local_site.count("/busy") == 2  # the 429 was retried in the child as in the thread


def test_pages_reach_on_result_with_their_bodies(local_site: LocalSite, tmp_path: Path) -> None:
    """A page asked for its body reaches ``on_result`` with it; the returned observation drops it."""
    local_site.route("/p", body=b"<html><head><title>P</title></head></html>", headers=HTML)
    settings = make_settings(tmp_path, http={"soft404_probe": False})
    url = local_site.url("/p")
    bodies: list[bytes] = []
    stream = checkprocess.spawn()
    stream.start(
        settings, on_result=lambda obs: bodies.append(obs.page.body if obs.page else b""), keep_pages=False
    )
    stream.put([url], {url: settings.http.max_page_bytes}, {})
    found = stream.finish()

    assert bodies == [b"<html><head><title>P</title></head></html>"]
    assert found[url].outcome.value == "success" and found[url].page is None


def test_a_stop_request_cancels_the_child(local_site: LocalSite, tmp_path: Path) -> None:
    """With stop set, finish raises Interrupted at once and the child process has ended."""
    local_site.route("/slow", body=b"late", delay=30.0)
    stop = threading.Event()
    stream = checkprocess.spawn()
    stream.start(make_settings(tmp_path), stop=stop)
    stream.put([local_site.url("/slow")], {}, {})
    _wait_for_hit(local_site, "/slow")
    stop.set()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        stream.finish()
    assert time.monotonic() - started < 10  # not the 30 s answer (a loaded machine may take a few seconds)
    assert stream._child is not None and stream._child.poll() is not None


def test_a_killed_child_ends_the_check_with_a_clear_error(local_site: LocalSite, tmp_path: Path) -> None:
    """A child killed mid-check (kill -9) makes finish raise CheckProcessLost naming the signal, at once."""
    local_site.route("/slow", body=b"late", delay=30.0)
    stream = checkprocess.spawn()
    stream.start(make_settings(tmp_path))
    stream.put([local_site.url("/slow")], {}, {})
    _wait_for_hit(local_site, "/slow")
    assert stream._child is not None
    os.kill(stream._child.pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(CheckProcessLost, match="killed by signal 9"):
        stream.finish()
    assert time.monotonic() - started < 10  # not the 30 s answer


@pytest.mark.parametrize("when", ["checking", "finishing"])
def test_a_killed_parent_leaves_no_check_running(local_site: LocalSite, tmp_path: Path, when: str) -> None:
    """The parent killed with kill -9 (while it feeds the check, or waits for its end): the child exits."""
    local_site.route("/slow", body=b"late", delay=30.0)
    script = textwrap.dedent(
        f"""
        import sys, time
        from localsite import make_settings
        from pathlib import Path
        from pipeline.checkprocess import spawn
        stream = spawn()
        stream.start(make_settings(Path({str(tmp_path)!r})))
        stream.put([{local_site.url("/slow")!r}], {{}}, {{}})
        print(stream._child.pid, flush=True)
        stream.finish() if {when == "finishing"} else time.sleep(60)
        """
    )
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        _wait_for_hit(local_site, "/slow")
        parent.kill()
        parent.wait()
        assert _gone(child), "the check's process outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


@pytest.mark.parametrize("dies_after", [0.0, 0.5])
def test_a_child_that_cannot_start_leaves_the_check_to_this_process(
    local_site: LocalSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    dies_after: float,
) -> None:
    """A child that dies before it is ready: a warning; every batch, sent before or after, is checked here."""
    local_site.route("/ok", body=b"fine")
    local_site.route("/also", body=b"fine")
    monkeypatch.setattr(checkprocess, "_CHILD", f"import sys, time; time.sleep({dies_after}); sys.exit(3)")
    stream = checkprocess.spawn()
    stream.start(make_settings(tmp_path))
    stream.put([local_site.url("/ok")], {}, {})  # with 0.5 s: sent while the child is still "starting"
    time.sleep(1.0)
    stream.put([local_site.url("/also")], {}, {})
    found = stream.finish()

    assert {url: obs.outcome.value for url, obs in found.items()} == {
        local_site.url("/ok"): "success",
        local_site.url("/also"): "success",
    }
    assert "exited with status 3" in caplog.text and "checking in this process instead" in caplog.text


def test_an_interpreter_this_user_cannot_run_leaves_the_check_to_this_process(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No child can be started at all (the interpreter cannot be run): a warning, the checks run here."""
    local_site.route("/ok", body=b"fine")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    checkprocess.prestart()  # first thing in `pipeline refresh`: it must not fail either
    stream = checkprocess.spawn()
    stream.start(make_settings(tmp_path))
    stream.put([local_site.url("/ok")], {}, {})
    found = stream.finish()

    assert found[local_site.url("/ok")].outcome.value == "success"
    assert "could not start" in caplog.text and "checking in this process instead" in caplog.text


def test_a_prestarted_child_is_the_one_spawn_takes_and_an_untaken_one_ends(tmp_path: Path) -> None:
    """``spawn`` takes the child ``prestart`` started; one never taken ends when its parent exits."""
    script = (
        "from pipeline import checkprocess as c; c.prestart(); early = c._early[0]; "
        "assert c.spawn() is early and not c._early; c.prestart(); print(c._early[0]._child.pid)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)

    assert _gone(int(done.stdout)), "an untaken check process outlived its parent"


def test_a_run_whose_check_process_is_killed_ends_interrupted_and_writes_nothing(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 of a run's check process: exit 5 with the reason logged, the run saved, no article written."""
    local_site.route("/slow", body=b"late", delay=5.0)
    corpus = tmp_path / "c"
    corpus.mkdir()
    article = corpus / "a.md"
    article.write_text(f'---\ntitle: a\nwebUrl: "{local_site.url("/slow")}"\n---\nBody\n', encoding="utf-8")
    before = article.read_bytes()
    spawned: list[CheckProcess] = []
    real_spawn = overlap.spawn

    def spawn() -> CheckProcess:
        spawned.append(real_spawn())
        return spawned[-1]

    def kill_once_asked() -> None:
        _wait_for_hit(local_site, "/slow")
        child = spawned[0]._child
        assert child is not None
        os.kill(child.pid, signal.SIGKILL)

    monkeypatch.setattr(overlap, "spawn", spawn)
    killer = threading.Thread(target=kill_once_asked)
    killer.start()
    settings = make_settings(tmp_path, corpus={"roots": [str(corpus)]})
    outcome = refresh(settings, RunOptions(show_progress=False), io.StringIO())
    killer.join()

    assert outcome.exit_code is ExitCode.INTERRUPTED and outcome.report.run.kind == "interrupted"
    assert "the check's process was killed by signal 9" in caplog.text
    assert article.read_bytes() == before
    assert outcome.report_dir is not None and (outcome.report_dir / "report.json").exists()


def test_the_child_runs_no_python_file_of_the_current_folder(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue.py where the user runs the pipeline (a pull request's checkout in CI) is not imported by the
    check's process: it starts with -P, so the current folder is not on its sys.path."""
    here = tmp_path / "checkout"
    here.mkdir()
    marker = tmp_path / "ran"
    (here / "queue.py").write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    monkeypatch.chdir(here)
    local_site.route("/one", body=b"ok")
    stream = CheckProcess()
    stream.start(make_settings(tmp_path))
    stream.put([local_site.url("/one")], {}, {})
    found = stream.finish()
    assert found[local_site.url("/one")].outcome.value == "success"
    assert not marker.exists()


def test_an_error_in_the_child_says_where_it_was_raised(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that ends the check in its process reaches the parent with the child's traceback as a note
    (a pickled error keeps no frames)."""
    broken = (
        "import sys; import pipeline.check.stream as stream\n"
        "def broken_add(self, *args, **kwargs):\n    raise KeyError('inside the check')\n"
        "stream._Session.add = broken_add\n"
    )
    monkeypatch.setattr(checkprocess, "_CHILD", broken + checkprocess._CHILD)
    stream = CheckProcess()
    stream.start(make_settings(tmp_path))
    stream.put([local_site.url("/one")], {}, {})
    with pytest.raises(KeyError) as raised:
        stream.finish()
    notes = "".join(getattr(raised.value, "__notes__", []))
    assert "in the check's process" in notes and "broken_add" in notes


def _namespace_dict(value: object) -> object:
    if isinstance(value, SimpleNamespace):
        return {name: _namespace_dict(item) for name, item in vars(value).items()}
    if isinstance(value, dict):
        return {key: _namespace_dict(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_namespace_dict(item) for item in value]
    return value


def test_the_settings_reach_the_child_as_plain_data_with_the_models_values(tmp_path: Path) -> None:
    """``plain`` keeps every field's value (nested models, per-host rules) and the models' properties."""
    settings = make_settings(
        tmp_path,
        http={
            "contact": "ops@example.org",
            "hosts": {"example.com": {"accept": "200..=299", "headers": {"X": "1"}}},
        },
    )
    sent = checkprocess.plain(settings)

    values = _namespace_dict(sent)
    assert isinstance(values, dict)
    properties = {
        ("http", "agent"): settings.http.agent,
        ("state", "database"): settings.state.database,
        ("state", "lock_file"): settings.state.lock_file,
        ("celery", "leases"): settings.celery.leases,
    }
    assert {(section, name): values[section].pop(name) for section, name in properties} == properties
    assert values == settings.model_dump()
    assert sent.http.hosts["example.com"].headers == {"X": "1"}


def test_the_check_process_loads_no_pydantic(local_site: LocalSite, tmp_path: Path) -> None:
    """The child's imports and the settings it is sent load neither pydantic nor the settings' models, and
    a check made with those settings observes what one made with the models does."""
    local_site.route("/ok", body=b"fine")
    local_site.route("/gone", status=404)
    settings = make_settings(tmp_path)
    urls = [local_site.url("/ok"), local_site.url("/gone")]
    probe = textwrap.dedent(
        """
        import pickle, sys
        sys.modules["httpx._main"] = None  # as the child does (checkprocess._CHILD)
        import pipeline.checkchild
        from pipeline.check.stream import CheckStream
        settings, urls = pickle.loads(sys.stdin.buffer.read())
        stream = CheckStream(settings)
        stream.start()
        stream.put(urls, {}, {})
        found = stream.finish()
        print(sorted((url, obs.outcome.value, obs.http_status) for url, obs in found.items()))
        print(" ".join(name for name in ("pydantic", "pipeline.config") if name in sys.modules))
        """
    )
    home = str(Path(checkprocess.__file__).resolve().parents[1])
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # no test sitecustomize
    done = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        input=pickle.dumps((checkprocess.plain(settings), urls)),
        capture_output=True,
        check=True,
        env={**env, "PYTHONPATH": home},
        cwd=tmp_path,
    )
    outcomes, loaded = done.stdout.decode().splitlines()
    stream = CheckStream(settings)
    stream.start()
    stream.put(urls, {}, {})
    expected = sorted((url, obs.outcome.value, obs.http_status) for url, obs in stream.finish().items())
    assert outcomes == str(expected)
    assert loaded == ""


def test_finish_does_not_wait_for_the_child_to_exit(
    local_site: LocalSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``finish`` returns once the child's last message is in, not after its exit; the child is reaped."""
    local_site.route("/ok", body=b"fine")
    # The same child, whose exit after its last message takes four seconds (under the reaper's 5 s kill).
    lingering = "import os, time; _exit = os._exit; os._exit = lambda code: (time.sleep(4), _exit(code)); "
    monkeypatch.setattr(checkprocess, "_CHILD", lingering + checkprocess._CHILD)
    check = checkprocess.CheckProcess()
    assert check._child is not None
    check.start(make_settings(tmp_path))
    assert check._ready.wait(30)  # the child's start-up, which a loaded machine slows, is not timed
    check.put([local_site.url("/ok")], {}, {})
    started = time.monotonic()
    found = check.finish()
    waited = time.monotonic() - started

    assert [(obs.outcome.value, obs.http_status) for obs in found.values()] == [("success", 200)]
    assert waited < 3 and check._child.poll() is None  # still exiting
    deadline = time.monotonic() + 10
    while check._child.returncode is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert check._child.returncode == 0  # reaped by the parent: no zombie left
