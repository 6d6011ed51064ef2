"""`pipeline bench --check-only --repeat N`: the whole command timed N times against a local server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_runs import _cli

from pipeline.tools.bench import run_benchmark


def test_the_whole_command_is_timed_each_time_and_its_median_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each repeat runs `pipeline refresh --check-only` on a fresh history; the median and load follow."""
    code = run_benchmark(40, 2, 0.0, 2, with_lychee=False, check_only=True, repeat=2)

    out = capsys.readouterr().out
    assert code == 0, out
    assert len(re.findall(r"the whole command, one article per URL\): [\d.]+ s, 40/40 ok", out)) == 2
    assert re.search(r"whole command, median of 2: [\d.]+ s; load average after: [\d.]+ / ", out)


def test_repeat_without_the_whole_command_is_a_usage_error(tmp_path: Path) -> None:
    """`pipeline bench --repeat 3` alone would time nothing three times: it exits 2 and says why."""
    result = _cli("bench", "--no-lychee", "--repeat", "3", cwd=tmp_path)
    assert result.returncode == 2
    assert "--check-only" in result.stderr
