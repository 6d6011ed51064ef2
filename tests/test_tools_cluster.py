"""`make workers` (pipeline.tools.cluster): a local PostgreSQL, Redis and workers a refresh can run on."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from localsite import LocalSite
from pgserver import postgres_binaries
from redisserver import redis_binary

pytestmark = pytest.mark.slow


def _listening(url: str) -> bool:
    host, port = re.search(r"@?([\d.]+):(\d+)/", url).groups()  # type: ignore[union-attr]
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def test_make_workers_serves_a_celery_refresh_and_ctrl_c_stops_everything(
    local_site: LocalSite, tmp_path: Path
) -> None:
    """The cluster writes a celery config a refresh runs on (its workers check the URLs); SIGINT stops the
    workers, Redis and PostgreSQL and exits 0."""
    redis_binary(), postgres_binaries()  # skip (or fail under CI) like the other real-server tests
    local_site.route("/a", body=b"ok")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text(f'---\ntitle: a\nwebUrl: "{local_site.url("/a")}"\n---\n', encoding="utf-8")
    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                "corpus": {"roots": [str(corpus)]},
                "http": {"allow_networks": ["127.0.0.0/8"]},
                "health": {"archive": {"enabled": False}},
            }
        ),
        encoding="utf-8",
    )
    # Directly in /tmp: under root PostgreSQL runs as postgres, which cannot enter pytest's 0700 folders.
    folder = Path(tempfile.mkdtemp(prefix="pipeline-cluster-")) / "cluster"
    folder.parent.chmod(0o755)
    cluster = subprocess.Popen(
        [sys.executable, "-m", "pipeline.tools.cluster", "--workers", "2", "--folder", str(folder),
         "--config", str(base), "--", "--concurrency", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert cluster.stdout is not None
        printed = ""
        while "Ctrl-C stops" not in printed:
            line = cluster.stdout.readline()
            assert line, f"the cluster exited {cluster.wait()}: {printed}"
            printed += line
        config = yaml.safe_load((folder / "pipeline.yaml").read_text(encoding="utf-8"))
        assert config["executor"] == "celery" and f"refresh --config {folder / 'pipeline.yaml'}" in printed
        broker, state = config["celery"]["broker_url"], config["state"]["url"]
        assert broker.startswith("redis://127.0.0.1:") and state.startswith(
            "postgresql://pipeline@127.0.0.1:"
        )
        assert config["corpus"]["roots"] == [str(corpus)]  # the base config's own settings are kept

        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "refresh", "--config", str(folder / "pipeline.yaml")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "sending 1 URLs to the workers" in done.stderr
        assert local_site.count("/a") >= 1
        logs = "".join(path.read_text(errors="replace") for path in (folder / "logs").glob("*.log"))
        assert "1 URLs checked" in logs

        cluster.send_signal(signal.SIGINT)
        assert cluster.wait(timeout=60) == 0
        time.sleep(0.2)
        assert not _listening(broker) and not _listening(state)
    finally:
        if cluster.poll() is None:  # a failed assertion: the cluster still stops its servers and workers
            cluster.send_signal(signal.SIGINT)
            try:
                cluster.wait(timeout=60)
            except subprocess.TimeoutExpired:
                cluster.kill()
                cluster.wait()
        if cluster.stdout is not None:
            cluster.stdout.close()
        shutil.rmtree(folder.parent, ignore_errors=True)
