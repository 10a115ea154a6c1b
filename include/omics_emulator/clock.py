"""Emulated time: runs last hours of emulated time but seconds of real time."""

from __future__ import annotations

import threading
import time


class EmulatedClock:
    """A wall clock that runs ``time_scale`` times faster than real time.

    ``time_scale=3600`` makes one real second one emulated hour. ``time_scale=0``
    freezes the clock so tests can move it only with :meth:`advance`; the order of
    state transitions is the same at every scale.
    """

    def __init__(self, time_scale: float, start: float | None = None) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self._lock = threading.Lock()
        self._scale = float(time_scale)
        self._real_origin = time.monotonic()
        self._emulated_origin = time.time() if start is None else float(start)

    @property
    def time_scale(self) -> float:
        return self._scale

    def now(self) -> float:
        """Emulated epoch seconds."""
        with self._lock:
            return self._emulated_origin + (time.monotonic() - self._real_origin) * self._scale

    def set_time_scale(self, time_scale: float) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        with self._lock:
            real_now = time.monotonic()
            self._emulated_origin += (real_now - self._real_origin) * self._scale
            self._real_origin = real_now
            self._scale = float(time_scale)

    def advance(self, seconds: float) -> None:
        """Jump emulated time forward (never backwards)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._emulated_origin += seconds

    def real_seconds_until(self, emulated_time: float) -> float | None:
        """Real seconds until ``emulated_time`` arrives by itself; None if frozen."""
        if self._scale == 0:
            return None
        return max(0.0, (emulated_time - self.now()) / self._scale)
