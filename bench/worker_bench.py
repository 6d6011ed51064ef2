"""Throughput of the Celery workers against one process: a script that prints figures, not a test.

    .venv/bin/python bench/worker_bench.py [--urls 20000] [--hosts 200] [--latency-ms 100] [--per-host 8]
                                           [--workers 1,2,4] [--repeat 3] [--pool prefork]
                                           [--profile FOLDER [--profile-workers]] [--logs FOLDER]
                                           [--ab FOLDER] [--settle SECONDS] [--max-other CORES]

Starts, on loopback only: a web server (``--server-processes`` bare asyncio processes) answering 200 after
``latency`` on ``hosts`` addresses 127.0.1.1 … (one host each), which counts the requests in flight per
host and keeps each host's peak; a real PostgreSQL and redis-server (``pipeline.tools.cluster``). It writes
articles holding the URLs (20 ``related[].ampWebUrl`` each), then runs ``pipeline refresh --check-only``
(the whole command: start-up, read pass, check, write pass, history, report) with the local executor and
with ``--executor celery`` on 1, 2 and 4 ``pipeline worker`` processes (``--concurrency``, default 1, tasks
at once each), every run on a fresh history database so every URL is due; the ``--repeat`` rounds run every
configuration once each, interleaved (the machine's other load falls on each alike). Printed: the load
average at the start and the end, and per configuration the median over the rounds: wall time and URLs/s
of the whole command, the check phase's own time (from the coordinator's "checked N of M URLs … in X s"
log line), the per-host peak in flight the server counted (must be <= per_host), the coordinator's peak
RSS (its own ``wait4`` rusage, workers not included); then the ratio of 4 workers to 1 (target >= 2.5),
and the CPU seconds each part used during the command (coordinator, workers with their pool processes,
the test server, PostgreSQL, Redis), and the other work the machine did meanwhile (its busy CPU seconds
less all of those: other sessions' work, which slows a run beside it; printed for each run too). Each run's
database is dropped once it is measured (kept, its autovacuum ran during the next run). ``--profile
FOLDER`` samples the coordinator (``--profile-workers``: every worker and its pool processes too) with
``py-spy record`` (``pip install py-spy``) into collapsed-stack files there, beside the logs
(``bench/profile_summary.py`` sums them); its timings are then not the benchmark's figures
(``--profile-format speedscope`` keeps the samples in order: a timeline).
``--ab FOLDER`` (a folder holding another commit's ``pipeline/``, e.g. unpacked by ``git archive``) runs
every configuration once more with that package, coordinator and workers, right after this tree's: an
A/B that sees the same moment's load. ``--settle SECONDS`` starts each run only once the machine's other
work has fallen below a quarter of a core (or after that long): the interleaving still spreads what is
left over every configuration, and each run's line says what ran beside it. ``--max-other CORES`` runs a
configuration again (up to 3 times) when other work took more than that many cores on average beside it;
every run is printed, the medians count the last run of each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from pipeline.tools.cluster import Postgres, Redis, Workers

# The test web: a bare asyncio protocol (HTTP/1.1 keep-alive, GET and HEAD, no body) rather than
# aiohttp.web, whose own CPU per request, on the two cores the checkers share, was a third of the
# workers' (the web a real run checks does not run on its cores).
_SERVER = """
import asyncio, json, socket, sys
first, count, latency = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
inflight, peak, seen = {}, {}, {"requests": 0}
OK = b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 2\\r\\n\\r\\n"
def answer(body):
    head = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n"
    return head % len(body) + body
class Handler(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
        self.host = transport.get_extra_info("sockname")[0]
    def data_received(self, data):
        self.buffer += data
        while b"\\r\\n\\r\\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\\r\\n\\r\\n")
            method, path = head.split(b" ", 2)[:2]
            if path == b"/__stats":
                stats = {"requests": seen["requests"], "peak": max(peak.values(), default=0)}
                self.transport.write(answer(json.dumps(stats).encode()))
            elif path == b"/__reset":
                peak.clear(); seen["requests"] = 0
                self.transport.write(answer(b"{}"))
            else:
                inflight[self.host] = inflight.get(self.host, 0) + 1
                peak[self.host] = max(peak.get(self.host, 0), inflight[self.host])
                seen["requests"] += 1
                asyncio.get_running_loop().call_later(latency, self.done, method == b"HEAD")
    def done(self, head):
        inflight[self.host] -= 1
        if not self.transport.is_closing():
            self.transport.write(OK if head else OK + b"ok")
async def main():
    loop = asyncio.get_running_loop()
    ports = []
    for i in range(first, first + count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((f"127.0.{1 + i // 250}.{1 + i % 250}", 0))
        ports.append(sock.getsockname()[1])
        await loop.create_server(Handler, sock=sock, backlog=4096)
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

_CPU = ("cpu_coordinator", "cpu_workers", "cpu_web", "cpu_postgres", "cpu_redis")
_CHECKED = re.compile(r"checked (\d+) of (\d+) URLs .* in ([\d.]+) s")


_TICK = os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``: every state but idle and
    iowait), to tell what other work ran beside a run."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICK


def _cpu(pid: int) -> float:
    """CPU seconds of a process and all its descendants, live or reaped (``/proc``: utime, stime and the
    reaped children's cutime, cstime, plus each live child's own)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    total = sum(int(value) for value in fields[11:15]) / _TICK
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            total += sum(_cpu(int(child)) for child in task.read_text().split())
    return total


def _address(index: int) -> str:
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


class Web:
    """The latency server, split over ``processes`` processes (hosts dealt out in blocks)."""

    def __init__(self, hosts: int, latency_s: float, processes: int) -> None:
        self.children: list[tuple[subprocess.Popen[str], str]] = []  # (process, "address:port" to ask)
        self.urls_of_host: list[str] = []
        block = -(-hosts // processes)
        for first in range(0, hosts, block):
            count = min(block, hosts - first)
            child = subprocess.Popen(
                [sys.executable, "-c", _SERVER, str(first), str(count), str(latency_s)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            ports = json.loads(child.stdout.readline())
            self.urls_of_host += [f"http://{_address(first + i)}:{port}" for i, port in enumerate(ports)]
            self.children.append((child, f"{_address(first)}:{ports[0]}"))

    def _ask(self, path: str) -> list[dict[str, int]]:
        answers = []
        for _, where in self.children:
            with urllib.request.urlopen(f"http://{where}{path}", timeout=10) as answer:
                answers.append(json.loads(answer.read()))
        return answers

    def reset(self) -> None:
        self._ask("/__reset")

    def stats(self) -> tuple[int, int]:
        """(requests served, the highest per-host peak in flight) since the last reset."""
        answers = self._ask("/__stats")
        return sum(a["requests"] for a in answers), max(a["peak"] for a in answers)

    def stop(self) -> None:
        for child, _ in self.children:
            child.terminate()
            child.wait(timeout=10)


def _corpus(folder: Path, web: Web, urls: int) -> Path:
    """Articles of 20 ``related[].ampWebUrl`` each; URL n is on host n mod hosts."""
    corpus = folder / "corpus"
    corpus.mkdir()
    hosts = len(web.urls_of_host)
    every = [f"{web.urls_of_host[n % hosts]}/page/{n}" for n in range(urls)]
    for start in range(0, urls, 20):
        related = "".join(f'  - ampWebUrl: "{url}"\n' for url in every[start : start + 20])
        (corpus / f"{start // 20:05d}.md").write_text(
            f'---\ntitle: "Article {start // 20}"\nrelated:\n{related}---\nBody\n', encoding="utf-8"
        )
    return corpus


def _config(folder: Path, corpus: Path, state_url: str, broker_url: str, per_host: int) -> Path:
    data: dict[str, Any] = {
        "corpus": {"roots": [str(corpus)]},
        "http": {"allow_networks": ["127.0.0.0/8"], "per_host_concurrency": per_host},
        "retry": {"attempts": 2, "backoff_initial": 0.1},
        "health": {"archive": {"enabled": False}},  # nothing leaves loopback
        "state": {"dir": str(folder / "state"), "url": state_url},
        "reports": {"dir": str(folder / "reports")},
    }
    if broker_url:
        data["celery"] = {"broker_url": broker_url}
    path = folder / "pipeline.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


def _fresh_database(postgres: Postgres, name: str) -> str:
    base = postgres.url.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


def _drop_database(postgres: Postgres, name: str) -> None:
    """Drop a run's database once it is measured: kept, the autovacuum of its tables (the run's deleted
    dispatch rows, its new links) ran during the next run, whatever configuration that was."""
    base = postgres.url.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _ready(workers: Workers) -> None:
    """Wait until every worker logged that it is ready (the clock starts after)."""
    deadline = time.monotonic() + 120
    for index, process in workers.processes.items():
        log = workers.logs / f"worker-{index}.log"
        while " ready." not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"worker {index} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)


_QUIET_CORES = 0.25  # --settle: the other work a run may start beside
_AGAIN = 3  # --max-other: a run beside more other work than that is run again at most this many times


def _settle(limit_s: float) -> tuple[float, float]:
    """Wait, at most ``limit_s`` seconds, until the machine's busy CPU over half a second (the bench's own
    processes idle: workers ready, no run) is below ``_QUIET_CORES`` cores; (seconds waited, the cores
    busy when the run starts)."""
    start = time.monotonic()
    while True:
        busy = _machine_busy()
        time.sleep(0.5)
        cores = (_machine_busy() - busy) / 0.5
        if cores < _QUIET_CORES or time.monotonic() - start >= limit_s:
            return time.monotonic() - start, cores


_SPY_FORMAT = ["raw"]  # --profile-format: "speedscope" keeps the samples' order (a timeline per thread)


def _spy(output: Path, idle: bool = True) -> list[str]:
    """The ``py-spy record`` command line that samples into ``output`` (collapsed stacks; ``idle``: waiting
    threads too, for where the wall time goes; without: where the CPU goes)."""
    return ["py-spy", "record", "--format", _SPY_FORMAT[0], *(["--idle"] if idle else []), "--rate", "200",
            "--nonblocking", "-o", str(output)]  # fmt: skip


def _refresh(config: Path, executor: str, cwd: Path, profile: Path | None = None) -> dict[str, float]:
    """One ``pipeline refresh --check-only`` in a child; wall time, check time, its own peak RSS.

    ``profile``: sampled by py-spy into that file (the RSS is then py-spy's, not the coordinator's)."""
    log = cwd / "coordinator.log"
    with log.open("w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            [*([*_spy(profile), "--"] if profile else []),
             sys.executable, "-m", "pipeline", "refresh", "--check-only", "--config", str(config),
             *(["--executor", executor] if executor != "local" else [])],
            stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if child.returncode != 0:
        raise SystemExit(f"pipeline refresh ({executor}) exited {child.returncode}:\n{text[-3000:]}")
    found = _CHECKED.search(text)
    return {
        "seconds": seconds,
        "check_seconds": float(found.group(3)) if found else float("nan"),
        "checked": float(found.group(1)) if found else float("nan"),
        "rss_mb": usage.ru_maxrss / 1024,
        "cpu_coordinator": usage.ru_utime + usage.ru_stime,
    }


def _once(label: str, run_once: Any, web: Web, urls: int) -> dict[str, float]:
    """One run of a configuration, checked: every URL checked and requested."""
    web.reset()
    one: dict[str, float] = run_once()
    requests, one["peak"] = web.stats()
    if one["checked"] != urls or requests < urls:
        raise SystemExit(f"{label}: checked {one['checked']:.0f} URLs, server saw {requests} requests")
    return one


def _summary(label: str, figures: list[dict[str, float]], urls: int, per_host: int) -> dict[str, float]:
    """Print a configuration's medians (and each run's URLs/s); return the medians."""
    median = {key: statistics.median(f[key] for f in figures) for key in figures[0]}
    median["peak"] = max(f["peak"] for f in figures)
    spread = ", ".join(f"{urls / f['seconds']:,.0f}" for f in figures)
    print(
        f"{label:<22} {median['seconds']:7.1f} s {urls / median['seconds']:8,.0f} URLs/s  "
        f"(check {median['check_seconds']:6.1f} s, {urls / median['check_seconds']:7,.0f} URLs/s)  "
        f"peak/host {median['peak']:.0f}{' OVER THE CAP' if median['peak'] > per_host else ''}  "
        f"coordinator RSS {median['rss_mb']:5.0f} MB   runs: {spread} URLs/s",
        flush=True,
    )
    cpu = "  ".join(f"{key[4:]} {median[key]:.1f}" for key in _CPU)
    print(
        f"{'':<22} CPU s: {cpu}  ({1000 * sum(median[k] for k in _CPU) / urls:.2f} ms a URL in all);"
        f" other work on the machine: {median['cpu_others']:.1f}"
    )
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=20_000)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--per-host", type=int, default=8)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (the median is shown)")
    parser.add_argument("--pool", default="prefork", help="the workers' Celery pool (prefork, solo, threads)")
    parser.add_argument("--concurrency", type=int, default=1, help="tasks each worker runs at once")
    parser.add_argument("--server-processes", type=int, default=2)
    parser.add_argument("--no-local", action="store_true", help="skip the local executor's figure")
    parser.add_argument("--profile", type=Path, help="sample the coordinator with py-spy into this folder")
    parser.add_argument("--profile-workers", action="store_true", help="with --profile: the workers too")
    parser.add_argument(
        "--profile-format", default="raw", choices=["raw", "speedscope"], help="speedscope: samples in order"
    )
    parser.add_argument(
        "--ab", type=Path, action="append", default=[],
        help="a folder holding another tree's pipeline/ package: every configuration runs with it too",
    )  # fmt: skip
    parser.add_argument("--logs", type=Path, help="keep every run's coordinator and worker logs here")
    parser.add_argument(
        "--settle", type=float, default=0.0, metavar="SECONDS",
        help=f"before each run, wait up to this long for the machine's other work to fall below"
        f" {_QUIET_CORES:g} cores (the work running beside each run is printed either way)",
    )  # fmt: skip
    parser.add_argument(
        "--max-other", type=float, metavar="CORES",
        help=f"run a configuration again (up to {_AGAIN} times; every run is printed) when the machine's"
        " other work during it took more than this many cores on average",
    )  # fmt: skip
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",") if n]
    _SPY_FORMAT[0] = args.profile_format

    with tempfile.TemporaryDirectory(prefix="worker-bench-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # PostgreSQL runs as postgres under root and needs to reach its folder
        web = Web(args.hosts, args.latency_ms / 1000, args.server_processes)
        postgres = Postgres(folder / "postgres").start()
        redis = Redis(folder / "redis").start()
        try:
            corpus = _corpus(folder, web, args.urls)
            print(
                f"{args.urls} URLs on {args.hosts} hosts, {args.latency_ms:g} ms latency, "
                f"{args.per_host} per host; {args.urls // 20} articles; median of {args.repeat};"
                f" {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            rounds = iter(range(1_000_000))

            def once(executor: str, count: int = 0) -> dict[str, float]:
                """A fresh history database (every URL due); ``count`` workers started on it first."""
                database = f"bench{next(rounds)}"
                state = _fresh_database(postgres, database)
                config = _config(folder, corpus, state, redis.url if count else "", args.per_host)
                options = ["--concurrency", str(args.concurrency), "--pool", args.pool, "--loglevel", "INFO"]
                workers = Workers(config, folder / "logs", count, options)
                spies: list[subprocess.Popen[bytes]] = []
                try:
                    _ready(workers.start())
                    if args.settle > 0:
                        waited, cores = _settle(args.settle)
                        print(
                            f"    waited {waited:.1f} s for a quiet machine ({cores:.2f} cores busy)",
                            flush=True,
                        )
                    name = f"{executor}-{count}-{next(rounds)}"
                    if args.profile:
                        args.profile.mkdir(parents=True, exist_ok=True)
                    if args.profile and args.profile_workers:
                        for index, process in workers.processes.items():
                            output = args.profile / f"{name}-worker{index}.txt"
                            command = [*_spy(output, idle=False), "--subprocesses", "--pid", str(process.pid)]
                            null = subprocess.DEVNULL
                            spies.append(subprocess.Popen(command, stdout=null, stderr=null))
                    profile = args.profile / f"{name}-coordinator.txt" if args.profile else None
                    others = {
                        "cpu_workers": [process.pid for process in workers.processes.values()],
                        "cpu_web": [child.pid for child, _ in web.children],
                        "cpu_postgres": [int((postgres.data / "postmaster.pid").read_text().split()[0])],
                        "cpu_redis": [redis.process.pid] if redis.process else [],
                    }
                    before = {key: sum(map(_cpu, pids)) for key, pids in others.items()}
                    busy = _machine_busy()
                    figures = _refresh(config, executor, folder, profile)
                    busy = _machine_busy() - busy
                    figures |= {key: sum(map(_cpu, pids)) - before[key] for key, pids in others.items()}
                    # What else the machine did meanwhile (other sessions' work): a run beside a busy
                    # neighbour is slower for it, which its time alone does not say.
                    figures["cpu_others"] = max(0.0, busy - sum(figures[key] for key in _CPU))
                    return figures
                finally:
                    workers.stop()
                    _drop_database(postgres, database)
                    for spy in spies:  # py-spy writes its file when the process it samples ends
                        spy.wait(timeout=60)
                    kept = args.profile or args.logs  # the logs (beside the samples): each shard's time
                    if kept:
                        kept.mkdir(parents=True, exist_ok=True)
                        for log in [folder / "coordinator.log", *(folder / "logs").glob("worker-*.log")]:
                            shutil.copy(log, kept / f"{name}-{log.name}")
                        shutil.rmtree(folder / "logs", ignore_errors=True)

            # Rounds interleave the configurations, so that the load of the machine's other work, which
            # changes by the minute, falls on each alike.
            plan = [("local", "local (one process)", 0)] if not args.no_local else []
            plan += [(f"{n}", f"celery, {n} worker{'s' if n > 1 else ''}", n) for n in counts]
            # --ab: each configuration also run with the package of another tree (coordinator and workers),
            # right after this tree's, so that both see the same moment's load.
            trees = [("", os.environ.get("PYTHONPATH"))]
            trees += [(f" [{path.name}]", str(path.resolve())) for path in args.ab]
            plan = [(k + tag, label + tag, n, tree) for k, label, n in plan for tag, tree in trees]
            runs: dict[str, list[dict[str, float]]] = {key: [] for key, _, _, _ in plan}
            for round_ in range(args.repeat):
                for key, label, count, tree in plan:
                    executor = "celery" if count else "local"
                    if tree is None:
                        os.environ.pop("PYTHONPATH", None)
                    else:
                        os.environ["PYTHONPATH"] = tree  # the children's (workers, coordinator) package
                    for attempt in range(1 + _AGAIN):
                        one = _once(label, lambda: once(executor, count), web, args.urls)  # noqa: B023
                        cores = one["cpu_others"] / one["seconds"]
                        busy = args.max_other is not None and cores > args.max_other
                        again = busy and attempt < _AGAIN
                        print(
                            f"  round {round_ + 1}: {label}: {one['seconds']:.1f} s (check"
                            f" {one['check_seconds']:.1f} s; other work on the machine meanwhile:"
                            f" {one['cpu_others']:.1f} CPU s, {cores:.2f} cores)"
                            + (
                                " - not counted, run again"
                                if again
                                else " - kept, still busy"
                                if busy
                                else ""
                            ),
                            flush=True,
                        )
                        if not again:
                            break
                    runs[key].append(one)
            print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
            results = {key: _summary(label, runs[key], args.urls, args.per_host) for key, label, _, _ in plan}
            for tag, _ in trees:
                if f"1{tag}" in results and f"4{tag}" in results:
                    one, four = results[f"1{tag}"], results[f"4{tag}"]
                    ratio = one["seconds"] / four["seconds"]
                    check = one["check_seconds"] / four["check_seconds"]
                    print(
                        f"4 workers / 1 worker{tag}: {ratio:.2f}x whole command, {check:.2f}x check phase"
                        " (target 2.5)"
                    )
        finally:
            redis.stop()
            postgres.stop()
            web.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
