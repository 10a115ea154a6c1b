"""Showing untrusted text: short echoes in messages, literal Markdown, one-line subjects.

Values from manifests, S3 keys and queue messages end up in error messages, logs, XComs, DAG
run notes and notifications. Echoed in full, one 50 MB field becomes a 50 MB log line, XCom
and SNS message (which SNS then refuses on every try). Everything shown goes through here.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

# Characters of an echoed value kept in a message (the rest is counted, not shown).
SHOWN_CHARACTERS = 80
# Longest message a Problem (and so a log line, an XCom entry, a report line) carries.
MAX_MESSAGE_CHARACTERS = 500


def _escape_invisible(text: str) -> str:
    """Control, format and unassigned characters as ``\\uXXXX`` so they can be seen."""
    out = []
    for char in text:
        if unicodedata.category(char)[0] == "C":
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def shown(value: Any, limit: int = SHOWN_CHARACTERS) -> str:
    """``value`` as a short, quoted, visible echo: ``'NA1\\u200b2'``, ``'xxxx…' (50,000,000 characters)``."""
    if not isinstance(value, str):
        text = repr(value)
        if len(text) <= limit:
            return text
        return f"{text[:limit]}… ({type(value).__name__})"
    # repr() escapes every character that does not print (controls, zero-width, ...).
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"


def cut(message: str, limit: int = MAX_MESSAGE_CHARACTERS) -> str:
    """``message`` at most ``limit`` characters long, saying how much was left out."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}… ({len(message) - limit:,} more characters)"


def one_line(text: str, limit: int) -> str:
    """Printable ASCII on one line (an SNS subject must be), at most ``limit`` characters."""
    flat = "".join(c if " " <= c <= "~" else "?" for c in text)
    return flat[:limit]


def markdown_literal(text: str) -> str:
    """``text`` as a Markdown code span: shown as written, never a link, emphasis or HTML.

    The fence is one backtick longer than the longest run of backticks in the text, and
    invisible characters are escaped (a newline in an S3 key would otherwise end the span).
    """
    visible = _escape_invisible(text)
    longest = run = 0
    for char in visible:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if visible.startswith("`") or visible.endswith("`") else ""
    return f"{fence}{pad}{visible}{pad}{fence}"


# What an Airflow run id and an S3 key segment may both hold.
ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:+-]+")


def safe_id_part(text: str, limit: int = 100) -> str:
    """``text`` as one part of a DAG run id or one S3 key segment: anything else replaced by ``-``;
    longer than ``limit`` keeps a hash suffix, so two long texts stay apart."""
    safe = ID_UNSAFE.sub("-", text).strip("-") or "x"
    if len(safe) > limit:
        safe = f"{safe[: limit - 9]}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return safe
