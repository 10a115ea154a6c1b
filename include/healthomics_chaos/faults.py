"""The faults of a chaos run, on a seeded schedule, and how long the system took to get over each.

Each fault is injected at its time, healed after its duration (a killed component is
started again, the proxy to moto restored, the callback receiver back on its port, the
quotas restored), and timed: ``healed`` is when it was over, ``resumed`` when the next task
instance finished after that (the deployment doing work again). Faults that last the whole
run (5xx on 5 % of the HealthOmics calls) and those that are only repeats of input
(duplicate S3 notifications) have no recovery time of their own.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy

log = logging.getLogger(__name__)


@dataclass
class Fault:
    name: str
    at: float  # seconds after the workload started
    duration: float
    inject: Callable[[], None] = field(repr=False)
    heal: Callable[[], None] | None = field(default=None, repr=False)
    started: float | None = None
    healed: float | None = None
    resumed: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        recovery = None if self.resumed is None or self.started is None else self.resumed - self.started
        return {
            "fault": self.name,
            "at_s": rounded(self.started),
            "lasted_s": rounded(None if self.healed is None or self.started is None else self.healed - self.started),
            "recovered_after_s": rounded(recovery),
            "error": self.error,
        }


def spread(names: list[str], seed: int, start: float, gap: float) -> dict[str, float]:
    """Times for ``names`` in a seeded order, ``gap`` seconds apart (with seeded jitter), from ``start``."""
    rng = random.Random(seed)
    order = list(names)
    rng.shuffle(order)
    return {name: start + i * gap + rng.uniform(0, gap / 3) for i, name in enumerate(order)}


class Progress:
    """Task instances finished so far, read from the metadata database every ``interval`` seconds."""

    def __init__(self, database_url: str, interval: float = 2.0) -> None:
        self.engine = sqlalchemy.create_engine(database_url, pool_pre_ping=True)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-progress", daemon=True)

    def count(self) -> int:
        query = "SELECT count(*) FROM task_instance WHERE state IN ('success', 'skipped')"
        with self.engine.connect() as connection:
            return int(connection.execute(sqlalchemy.text(query)).scalar() or 0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append((time.monotonic(), self.count()))
            except sqlalchemy.exc.SQLAlchemyError as err:
                log.warning("progress: %s", err)

    def start(self) -> Progress:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()

    def resumed_after(self, moment: float) -> float | None:
        """When the count first grew after ``moment`` (monotonic), or None."""
        before = [count for at, count in self.samples if at <= moment]
        base = before[-1] if before else 0
        return next((at for at, count in self.samples if at > moment and count > base), None)


class Schedule:
    """Runs the faults in a thread of their own, each at its time.

    The thread lives until :meth:`stop`: the components it starts again are its children, and
    they get SIGTERM when the thread that started them ends (``PR_SET_PDEATHSIG`` is per thread).
    """

    def __init__(self, faults: list[Fault], started: float) -> None:
        self.faults = sorted(faults, key=lambda f: f.at)
        self.started = started
        self._thread = threading.Thread(target=self._run, name="chaos-faults", daemon=True)
        self._stop = threading.Event()
        self._finished = threading.Event()

    def _run(self) -> None:
        for fault in self.faults:
            wait = self.started + fault.at - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            log.info("fault: %s (for %.0f s)", fault.name, fault.duration)
            fault.started = time.monotonic() - self.started
            try:
                fault.inject()
                if fault.duration and self._stop.wait(fault.duration):
                    pass  # stopping: still heal, so nothing is left broken
                if fault.heal is not None:
                    fault.heal()
            except Exception as err:  # recorded in the results, never fatal to the run
                log.exception("fault %s", fault.name)
                fault.error = f"{type(err).__name__}: {err}"
            fault.healed = time.monotonic() - self.started
        self._finished.set()
        self._stop.wait()

    def start(self) -> Schedule:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(300)

    def done(self) -> bool:
        """Every fault was injected and healed."""
        return self._finished.is_set()

    def measure(self, progress: Progress) -> None:
        for fault in self.faults:
            if fault.healed is not None and fault.heal is not None:
                resumed = progress.resumed_after(self.started + fault.healed)
                fault.resumed = None if resumed is None else resumed - self.started
