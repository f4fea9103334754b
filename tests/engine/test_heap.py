"""engine/heap.py: trims spaced by the interval, and a no-op without glibc's malloc_trim."""

from __future__ import annotations

import sys

import pytest

from satcli.engine.heap import HeapTrimmer, _malloc_trim


def test_trims_are_spaced_by_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("satcli.engine.heap.time.monotonic", lambda: clock[0])
    calls: list[int] = []
    trimmer = HeapTrimmer(interval=2.0, trim=lambda pad: calls.append(pad) or 1)
    for step in (0.5, 1.0, 0.6, 0.1, 3.0):  # 100.5, 101.5, 102.1 (trim), 102.2, 105.2 (trim)
        clock[0] += step
        trimmer()
    assert calls == [0, 0] and trimmer.trims == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim is Linux's")
def test_glibc_trim_runs() -> None:
    trim = _malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)  # 1: memory was released, 0: none could be


def test_without_malloc_trim_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("satcli.engine.heap.sys.platform", "darwin")
    assert _malloc_trim() is None
    trimmer = HeapTrimmer(interval=0.0)
    trimmer()
    assert trimmer.trims == 0
