"""Dead letters: what could not be processed, kept in S3 with the reason, after a bounded number of tries.

The rule for every queue message (and every manifest a sweep finds): it is processed, or it
is dead-lettered with its reason. What can never be processed (not an event, not JSON, nested
too deeply) is dead-lettered at once. What fails for a reason that might pass (S3 down, a bug
met by one odd message) is tried again when the message comes back, and each failed try is
counted here; after ``max_tries`` it is dead-lettered with the last reason, so one bad message
is never redelivered forever and never holds up the others. Layout under the prefix::

    <kind>/<name>.json          the dead letter: reason, tries, when, and the message itself
    tries/<kind>/<name>.json    failed tries so far of something not yet dead-lettered

Writes are idempotent (a dead letter is written once; a repeated count is harmless), so a
redelivered message or a retried task changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from healthomics.utils.s3 import S3Documents
from healthomics.utils.text import cut

log = logging.getLogger(__name__)

# Tries before something that keeps failing is dead-lettered.
MAX_TRIES = 5


def digest(text: str) -> str:
    """A short, key-safe name for anything (a message body, an object version)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class DeadLetters(S3Documents):
    """
    Dead letters and failed-try counts under one S3 prefix.

    :param s3_client: a boto3 S3 client.
    :param uri: ``s3://<bucket>/<prefix>`` they are kept under.
    :param max_tries: failed tries before :meth:`failed_try` dead-letters.
    :param encryption: ``put_object`` encryption arguments (default SSE-S3).
    """

    def __init__(
        self, s3_client: Any, uri: str, max_tries: int = MAX_TRIES, encryption: dict[str, str] | None = None
    ) -> None:
        super().__init__(s3_client, uri, encryption)
        self.max_tries = max_tries

    def is_dead(self, kind: str, name: str) -> bool:
        return self.exists(self.key(kind, f"{name}.json"))

    def dead_letter(self, kind: str, name: str, reason: str, item: Any, tries: int = 1) -> str:
        """Keep ``item`` as a dead letter of ``kind`` with its reason (once); its URI."""
        key = self.key(kind, f"{name}.json")
        if not self.exists(key):
            self.put(key, {"reason": cut(reason, 2000), "tries": tries, "at": _now(), "item": item})
        log.error("Dead-lettered %s %s to %s after %d try(s): %s", kind, name, self.uri(key), tries, cut(reason))
        return self.uri(key)

    def failed_try(self, kind: str, name: str, reason: str, item: Any) -> bool:
        """Count one failed try of ``item``; True when that was the last one and it is now dead-lettered."""
        if self.is_dead(kind, name):
            return True
        count_key = self.key("tries", kind, f"{name}.json")
        record = self.get(count_key) or {"tries": 0, "reasons": []}
        tries = int(record.get("tries", 0)) + 1
        reasons = [*record.get("reasons", [])[-(self.max_tries - 1) :], {"at": _now(), "reason": cut(reason, 500)}]
        if tries >= self.max_tries:
            self.dead_letter(kind, name, "; ".join(r["reason"] for r in reasons[-3:]), item, tries)
            return True
        self.put(count_key, {"tries": tries, "reasons": reasons})
        log.warning("%s %s failed (try %d of %d): %s", kind, name, tries, self.max_tries, cut(reason))
        return False
