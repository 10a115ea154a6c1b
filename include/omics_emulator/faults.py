"""Fault injection: make chosen runs fail or hang, and API calls fail at a rate.

Rules are JSON objects posted to ``/_emulator/faults``:

``{"action": "fail", "match": {"name": "NA12878"}, "failureReason": "OUT_OF_MEMORY_ERROR",
"statusMessage": "...", "phase": "RUNNING", "times": 1}``
    Runs whose attributes match fail in ``phase`` (STARTING or RUNNING) with the
    given reason; ``times`` bounds how many runs the rule hits (default: all).
``{"action": "hang", "match": {...}}``
    Matching runs stay RUNNING until cancelled or until the maximum run duration.
``{"action": "slow", "match": {...}, "factor": 10}``
    Matching runs run ``factor`` times as long (a sample with ten times the reads).
``{"action": "fail_submission", "match": {"runSettingId": "S7"}, "code": "ValidationException",
"message": "..."}``
    Batch entries that match are not submitted (submissionStatus FAILED).
``{"action": "error", "operations": ["GetRun"], "code": "ThrottlingException", "rate": 0.5,
"times": 100}``
    API calls fail before reaching the handler (429/500/503 storms).

``match`` keys (``name``, ``runSettingId``, ``workflowId``, ``requestId``) are regular
expressions searched in the attribute; ``tags`` maps tag keys to such expressions.
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from .errors import ERROR_STATUS, OmicsError

ACTIONS = ("fail", "hang", "slow", "fail_submission", "error")
INJECTABLE_ERRORS = (
    "ThrottlingException",
    "InternalServerException",
    "ServiceUnavailableException",
    "RequestTimeoutException",
    "AccessDeniedException",
)
_MATCH_KEYS = ("name", "runSettingId", "workflowId", "requestId", "tags")


@dataclass
class FaultRule:
    action: str
    match: dict[str, Any] = field(default_factory=dict)
    operations: list[str] = field(default_factory=list)
    code: str = ""
    message: str = ""
    failure_reason: str = "RUN_TASK_FAILED"
    status_message: str = ""
    phase: str = "RUNNING"
    rate: float = 1.0
    factor: float = 1.0
    times: int | None = None
    applied: int = 0
    id: str = ""

    @classmethod
    def from_request(cls, body: dict[str, Any], rule_id: str) -> FaultRule:
        action = body.get("action")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        match = body.get("match") or {}
        unknown = set(match) - set(_MATCH_KEYS)
        if unknown:
            raise ValueError(f"unknown match keys {sorted(unknown)}; use {_MATCH_KEYS}")
        for key, pattern in match.items():
            patterns = pattern.values() if key == "tags" else [pattern]
            for p in patterns:
                re.compile(p)
        rule = cls(
            action=action,
            match=match,
            operations=list(body.get("operations") or []),
            code=body.get("code", ""),
            message=body.get("message", ""),
            failure_reason=body.get("failureReason", "RUN_TASK_FAILED"),
            status_message=body.get("statusMessage", ""),
            phase=body.get("phase", "RUNNING"),
            rate=float(body.get("rate", 1.0)),
            factor=float(body.get("factor", 1.0)),
            times=body.get("times"),
            id=rule_id,
        )
        if action == "error":
            rule.code = rule.code or "ThrottlingException"
            if rule.code not in INJECTABLE_ERRORS:
                raise ValueError(f"code must be one of {INJECTABLE_ERRORS}")
        if action == "fail_submission":
            rule.code = rule.code or "ValidationException"
            if rule.code not in ERROR_STATUS:
                raise ValueError(f"unknown error code {rule.code}")
        if action == "fail" and rule.phase not in ("STARTING", "RUNNING"):
            raise ValueError("phase must be STARTING or RUNNING")
        if rule.factor <= 0:
            raise ValueError("factor must be above 0")
        if not 0.0 <= rule.rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        return rule

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "match": self.match,
            "operations": self.operations,
            "code": self.code,
            "message": self.message,
            "failureReason": self.failure_reason,
            "statusMessage": self.status_message,
            "phase": self.phase,
            "rate": self.rate,
            "factor": self.factor,
            "times": self.times,
            "applied": self.applied,
        }

    def exhausted(self) -> bool:
        return self.times is not None and self.applied >= self.times

    def matches(self, attributes: dict[str, Any]) -> bool:
        for key, pattern in self.match.items():
            if key == "tags":
                tags = attributes.get("tags") or {}
                for tag_key, tag_pattern in pattern.items():
                    if tag_key not in tags or not re.search(tag_pattern, tags[tag_key]):
                        return False
            elif not re.search(pattern, str(attributes.get(key) or "")):
                return False
        return True


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._random = random.Random(seed)

    def add(self, body: dict[str, Any]) -> FaultRule:
        rule = FaultRule.from_request(body, rule_id=str(next(self._ids)))
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def as_list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.as_dict() for r in self._rules]

    def request_error(self, operation: str) -> OmicsError | None:
        """An injected error for this API call, if a rule says so."""
        with self._lock:
            for rule in self._rules:
                if rule.action != "error" or rule.exhausted():
                    continue
                if rule.operations and operation not in rule.operations:
                    continue
                if self._random.random() >= rule.rate:
                    continue
                rule.applied += 1
                message = rule.message or ("Rate exceeded" if rule.code == "ThrottlingException" else "Injected fault")
                return OmicsError(rule.code, message)
        return None

    def pick(self, actions: tuple[str, ...], attributes: dict[str, Any]) -> FaultRule | None:
        """The first live rule of these actions matching a run or batch entry; counts it."""
        with self._lock:
            for rule in self._rules:
                if rule.action in actions and not rule.exhausted() and rule.matches(attributes):
                    if self._random.random() >= rule.rate:
                        continue
                    rule.applied += 1
                    return rule
        return None
