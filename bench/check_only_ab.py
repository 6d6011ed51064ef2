"""A/B of the whole ``pipeline refresh --check-only`` on ``pipeline bench``'s workload: wall and CPU seconds.

The same local server, URLs and articles as ``pipeline bench --check-only`` (``pipeline.tools.bench``); each
tree (a checkout holding ``pipeline/``) runs the command with ``PYTHONPATH=<tree>`` and this interpreter,
round by round, so a machine whose load drifts treats them alike. CPU is user+sys of the whole process tree
(the run, its check process, its read pool), the figure that compares where the command is CPU-bound.
Prints figures only.

    .venv/bin/python bench/check_only_ab.py --repeat 3 /tmp/before .
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.tools.bench import _urls, check_only_workload, start_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--urls", type=int, default=5000)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--per-host", type=int, default=10)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.trees]
    server, ports = start_server(args.hosts, 0.1)
    runs: dict[Path, list[tuple[float, float]]] = {tree: [] for tree in trees}
    try:
        for round_number in range(1, args.repeat + 1):
            for tree in trees:
                with tempfile.TemporaryDirectory() as work:
                    config = check_only_workload(
                        Path(work), _urls(args.urls, ports), args.hosts, args.per_host
                    )
                    command = [sys.executable, "-m", "pipeline", "refresh", "--check-only", "--quiet"]
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    started = time.perf_counter()
                    done = subprocess.run(
                        [*command, "--config", str(config)],
                        cwd=work,
                        env={**os.environ, "PYTHONPATH": str(tree)},
                    )
                    wall = time.perf_counter() - started
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                runs[tree].append((wall, cpu))
                print(
                    f"round {round_number} {tree}: exit {done.returncode}, wall {wall:.2f} s,"
                    f" CPU {cpu:.2f} s, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        server.kill()
    # Every host's URLs in rounds of per_host requests, each the server's 100 ms.
    bound = math.ceil(args.urls / args.hosts / args.per_host) * 0.1
    for tree, figures in runs.items():
        wall = statistics.median(w for w, _ in figures)
        cpu = statistics.median(c for _, c in figures)
        print(
            f"median of {len(figures)} {tree}: wall {wall:.2f} s ({wall / bound:.2f}x the {bound:.2f} s"
            f" politeness bound), CPU {cpu:.2f} s"
        )


if __name__ == "__main__":
    main()
