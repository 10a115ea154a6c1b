"""devkit.wait_until: the one wait of the development code."""

from __future__ import annotations

import time

import pytest

from devkit.waiting import wait_until


def test_it_returns_what_the_probe_found_once_it_is_truthy() -> None:
    answers = iter([None, 0, {}, {"state": "success"}])
    assert wait_until(lambda: next(answers), timeout=5, interval=0) == {"state": "success"}


def test_it_times_out_saying_what_did_not_happen_as_of_the_deadline() -> None:
    seen: list[float] = []

    def probe() -> bool:
        seen.append(time.monotonic())
        return False

    began = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^\d+ probes and no success within 0.2s$"):
        wait_until(probe, timeout=0.2, interval=0.08, what=lambda: f"{len(seen)} probes and no success")
    assert len(seen) >= 2
    assert seen[-1] >= began + 0.2  # the last chance is taken at the deadline, not before it


def test_an_error_in_the_probe_ends_the_wait_at_once() -> None:
    def probe() -> bool:
        raise RuntimeError("the server exited")

    with pytest.raises(RuntimeError, match="the server exited"):
        wait_until(probe, timeout=60)
