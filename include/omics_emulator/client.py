"""A small client for the emulator's admin API (tests, demo and benchmarks use it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class EmulatorAdmin:
    def __init__(self, endpoint_url: str, timeout: float = 60.0) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, route: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.endpoint_url}/_emulator/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} /_emulator/{route}: {err.code} {err.read().decode()}") from err

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "health"))

    def reset(self, config: bool = False) -> None:
        """Forget all resources, faults and counters; ``config=True`` restores startup settings."""
        self._call("POST", "reset", {"config": config})

    def config(self) -> dict[str, Any]:
        return dict(self._call("GET", "config"))

    def configure(self, **changes: Any) -> dict[str, Any]:
        return dict(self._call("PATCH", "config", changes))

    def counters(self) -> dict[str, Any]:
        return dict(self._call("GET", "counters"))

    def calls(self, operation: str) -> int:
        return int(self.counters()["operations"].get(operation, {}).get("calls", 0))

    def events(self) -> dict[str, Any]:
        """Events sent to SQS so far: ``{"queue", "sent", "failed", "ids"}``."""
        return dict(self._call("GET", "events"))

    def reset_counters(self) -> None:
        self._call("DELETE", "counters")

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        return dict(self._call("POST", "faults", rule))

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def now(self) -> float:
        return float(self._call("GET", "clock")["now"])

    def advance(self, seconds: float) -> float:
        return float(self._call("POST", "clock/advance", {"seconds": seconds})["now"])

    def settle(self, timeout: float = 30.0) -> bool:
        return bool(self._call("POST", "settle", {"timeout": timeout})["settled"])
