"""Freed memory handed back between stages: found on glibc, a no-op elsewhere."""

from __future__ import annotations

import platform

import pytest

from pipeline import memory


def test_release_uses_malloc_trim_on_glibc() -> None:
    """On glibc (Linux servers, CI) the trim is found and runs; elsewhere release() does nothing."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not a glibc system")
    assert memory._trim() is not None
    memory.release()


def test_release_is_a_no_op_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    """A C library without malloc_trim (musl, macOS) is no error."""
    memory._trim.cache_clear()
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: object())
    try:
        assert memory._trim() is None
        memory.release()
    finally:
        memory._trim.cache_clear()
