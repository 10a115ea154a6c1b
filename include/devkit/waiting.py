"""The one way development code waits for something to become true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.5,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """Call ``probe`` every ``interval`` seconds until it returns something truthy; return that.

    Raises :class:`TimeoutError` after ``timeout`` seconds, saying ``what`` did not happen (a
    callable is asked then, so the message can tell the last state seen). The probe runs at
    least once, and once more at the deadline, so a slow probe never loses its last chance.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            description = what() if callable(what) else what
            raise TimeoutError(f"{description} within {timeout:g}s")
        time.sleep(min(interval, remaining))
