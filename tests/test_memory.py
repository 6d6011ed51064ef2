"""Freed memory handed back between stages: found on glibc, a no-op elsewhere."""

from __future__ import annotations

import gc
import platform

import pytest

from pipeline import memory
from pipeline.check.batch import _few_collections


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


def test_a_check_in_this_process_leaves_the_runners_frozen_objects_frozen() -> None:
    """The check's own collector pause does not thaw what ``keep_from_collections`` set aside first."""
    memory.keep_from_collections()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with _few_collections():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        memory.thaw()
    assert gc.get_freeze_count() == 0
