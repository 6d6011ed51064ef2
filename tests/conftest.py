"""Shared fixtures: real loopback servers (plain and TLS) and settings sized for fast tests.

`tests/localsite.py` holds the server and `make_settings`; import it as `localsite` (pytest puts tests/ on
the import path).
"""

from __future__ import annotations

import itertools
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import netguard
import pytest
from localsite import LocalSite, make_settings, tls_material
from redisserver import RedisServer, redis_server

from pipeline.config import Settings

TLS_FIRST_ADDRESS = 40
NETGUARD_SITE = Path(__file__).resolve().parent / "netguard_site"


def pytest_configure(config: pytest.Config) -> None:
    """No test reaches a public host, in this process or in any Python process a test starts."""
    netguard.install()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(NETGUARD_SITE), *filter(None, [os.environ.get("PYTHONPATH")])]
    )


@pytest.fixture(scope="session")
def _plain_server() -> Iterator[LocalSite]:
    site = LocalSite(hosts=4, first_address=10).start()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def _tls_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    addresses = [f"127.0.0.{TLS_FIRST_ADDRESS + i}" for i in range(2)]
    return tls_material(tmp_path_factory.mktemp("tls"), addresses)


@pytest.fixture(scope="session")
def _tls_server(_tls_bundle: tuple[ssl.SSLContext, Path]) -> Iterator[LocalSite]:
    site = LocalSite(hosts=2, first_address=TLS_FIRST_ADDRESS, tls=_tls_bundle[0]).start()
    yield site
    site.stop()


@pytest.fixture
def local_site(_plain_server: LocalSite) -> LocalSite:
    """A plain-HTTP server on 127.0.0.10-13, with no routes and zeroed counters."""
    _plain_server.reset()
    return _plain_server


@pytest.fixture
def tls_site(_tls_server: LocalSite) -> LocalSite:
    """An HTTPS server on 127.0.0.40-41 whose certificate is issued by the test CA (``ca_file``)."""
    _tls_server.reset()
    return _tls_server


@pytest.fixture
def ca_file(_tls_bundle: tuple[ssl.SSLContext, Path]) -> Path:
    """PEM file of the test CA that signed the TLS server's certificate."""
    return _tls_bundle[1]


@pytest.fixture
def test_settings(tmp_path: Path, ca_file: Path) -> Settings:
    """Settings for tests: allow 127.0.0.0/8, 2 s timeouts, 0.01 s backoff, the test CA trusted."""
    return make_settings(tmp_path, ca_file)


@pytest.fixture(scope="session")
def _redis_server() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_url(_redis_server: RedisServer) -> str:
    """The URL of a real, empty redis-server on loopback (shared by the session, flushed per test)."""
    if not _redis_server.running:  # a test stopped it: back, on the same port
        _redis_server.start()
    _redis_server.flush()
    return _redis_server.url


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder under /tmp that an unprivileged user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="fm-shared-"))
    folder.chmod(0o755)
    yield folder
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_symlink():  # reports/latest: remove the link, never follow it
            path.unlink()
            continue
        path.chmod(0o700)
        path.unlink() if not path.is_dir() else path.rmdir()
    folder.rmdir()


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    """A real PostgreSQL server on loopback for one test module; its URL (no database named)."""
    from pgserver import postgres_server

    with postgres_server() as url:
        yield url


_DATABASES = itertools.count()


@pytest.fixture
def database(pg: str) -> str:
    """A fresh, empty database on the module's PostgreSQL server; its URL."""
    from celeryworkers import fresh_database

    return fresh_database(pg, f"db{next(_DATABASES)}")
