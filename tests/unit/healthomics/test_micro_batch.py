"""When a micro batcher looks at one of its submitting batches next (no servers)."""

from __future__ import annotations

import pytest

from healthomics.triggers.micro_batch import MicroBatcher, _Check


@pytest.mark.parametrize(
    ("check", "total", "attempted", "now", "expected"),
    [
        (_Check(attempted=10, seen_at=100.0), 40, 20, 110.0, 20.0),  # 1 run/s, 20 to go
        (_Check(attempted=0, seen_at=100.0), 40, 20, 110.0, 0.0),  # just started: no rate yet
        (_Check(attempted=10, seen_at=100.0), 40, 40, 110.0, 0.0),  # all submitted
        (_Check(attempted=10, seen_at=100.0), 40, 10, 110.0, 0.0),  # done short of its total: no rate
        (_Check(attempted=1, seen_at=100.0), 1000, 2, 110.0, 160.0),  # slow: at most 16 intervals
    ],
)
def test_a_submitting_batch_is_looked_at_again_when_it_should_be_done(
    check: _Check, total: int, attempted: int, now: float, expected: float
) -> None:
    batcher = MicroBatcher({"poll_interval": 10})
    assert batcher._time_to_done(check, total, attempted, now) == pytest.approx(expected)
