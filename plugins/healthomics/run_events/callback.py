"""POST a run's state change to a team's own system (a LIMS, a WES API server) through an Airflow HTTP connection."""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.providers.http.hooks.http import HttpHook
from requests.exceptions import RequestException

log = logging.getLogger(__name__)

CALLBACK_PATH = "internal/callbacks/omics-state-change"
# Worth another try: the receiver is busy or down; anything else in 4xx will not get better.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class CallbackFailedError(Exception):
    """The callback could not be delivered (the reason says why, ``attempts`` how often it was tried)."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


def post_state_change(
    payload: dict[str, Any],
    *,
    http_conn_id: str,
    idempotency_key: str,
    path: str = CALLBACK_PATH,
    timeout: float = 10.0,
    attempts: int = 5,
    backoff: float = 1.0,
) -> int:
    """
    POST ``payload`` as JSON to ``{connection base}/{path}``; the HTTP status on success.

    Connection errors, timeouts and 408/425/429/5xx answers are retried ``attempts`` times in
    all, waiting ``backoff`` seconds, then twice that, and so on. Raises
    :class:`CallbackFailedError` when it still fails or the answer is another 4xx. The
    ``Idempotency-Key`` header (the event id) lets the receiver drop a repeat.
    """
    hook = HttpHook(method="POST", http_conn_id=http_conn_id)
    headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
    reason = "not attempted"
    for attempt in range(1, attempts + 1):
        try:
            response = hook.run(
                endpoint=path,
                json=payload,
                headers=headers,
                extra_options={"check_response": False, "timeout": timeout},
            )
        except RequestException as err:
            reason = f"{type(err).__name__}: {err}"
        else:
            if response.status_code < 300:
                return int(response.status_code)
            reason = f"HTTP {response.status_code}: {response.text[:500]}"
            if response.status_code not in RETRYABLE_STATUS:
                raise CallbackFailedError(reason, attempt)
        if attempt < attempts:
            delay = backoff * 2 ** (attempt - 1)
            log.warning("Callback %s attempt %d failed (%s); again in %.1fs", idempotency_key, attempt, reason, delay)
            time.sleep(delay)
    raise CallbackFailedError(reason, attempts)
