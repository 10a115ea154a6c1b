"""Reading JSON from outside (manifests, queue messages) without losing or crashing on anything.

``json.loads`` lets three things through silently or loudly in the wrong way:

* a key given twice keeps its last value: a manifest with ``flowcellSamples`` twice lost the
  samples of the first list without a word;
* ``NaN`` and ``Infinity`` are accepted, then cannot be sent to any AWS API as JSON;
* nesting thousands of levels deep raises ``RecursionError`` (here or in any recursive code
  that walks the document later), which a task retries as if it were transient and a queue
  redelivers forever.

:func:`read_json` refuses the last two and reports every duplicated key with its path.
:func:`nesting_problems` applies the depth rule to a document that is already parsed (an
inline manifest from a DAG run's conf). Both walk the document without recursion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Deeper than any manifest or event needs (a native manifest's sample parameters sit at
# level 4), and far below the interpreter's recursion limit for the code that walks it.
MAX_JSON_DEPTH = 32


class DocumentError(ValueError):
    """The text is not a JSON document this package can use; the message says why."""


@dataclass
class JsonDocument:
    """A parsed document and what was wrong with it that parsing alone did not refuse."""

    value: Any
    # (path, message) pairs, e.g. ("manifest.samples[2]", "key 'sample_id' appears 2 times").
    problems: list[tuple[str, str]] = field(default_factory=list)


class _NonFinite:
    """Stands in for NaN/Infinity until the walk finds it and says where it was."""

    def __init__(self, text: str) -> None:
        self.text = text


def _child_path(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def read_json(text: str | bytes, *, root: str = "document", max_depth: int = MAX_JSON_DEPTH) -> JsonDocument:
    """Parse ``text``; raise :class:`DocumentError` if it is not JSON or nested too deeply.

    Duplicated keys and non-finite numbers are returned as ``problems`` (with their paths), so
    a caller that lists every problem of a manifest can list these with the rest.
    """
    # id of a dict -> (the dict, its repeated keys); the dict is held so its id stays its own
    # (a repeated key's overwritten value is otherwise freed and its id reused).
    duplicates: dict[int, tuple[dict[str, Any], list[tuple[str, int]]]] = {}

    def object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            counts: dict[str, int] = {}
            for key, _ in pairs:
                counts[key] = counts.get(key, 0) + 1
            duplicates[id(result)] = (result, [(key, n) for key, n in counts.items() if n > 1])
        return result

    try:
        value = json.loads(text, object_pairs_hook=object_pairs, parse_constant=_NonFinite)
    except RecursionError as err:
        raise DocumentError(f"nested more than {max_depth} levels deep") from err
    except (ValueError, TypeError) as err:  # JSONDecodeError, bad UTF-8, an integer of 5,000 digits
        raise DocumentError(f"not valid JSON: {err}") from err
    document = JsonDocument(value)
    for path, item, depth in _walk(value, root):
        if depth > max_depth:
            raise DocumentError(f"nested more than {max_depth} levels deep (at {path})")
        if isinstance(item, _NonFinite):
            document.problems.append((path, f"{item.text} is not a JSON number the service accepts"))
        elif isinstance(item, dict) and duplicates.get(id(item), (None,))[0] is item:
            for key, count in duplicates[id(item)][1]:
                document.problems.append((path, f"key {key!r} appears {count} times (only the last would count)"))
    return document


def strict_json(text: str | bytes, *, root: str = "document") -> Any:
    """:func:`read_json` for a message: any problem at all refuses it (:class:`DocumentError`)."""
    document = read_json(text, root=root)
    if document.problems:
        path, problem = document.problems[0]
        raise DocumentError(f"{path}: {problem}")
    return document.value


def nesting_problems(value: Any, *, root: str = "document", max_depth: int = MAX_JSON_DEPTH) -> list[str]:
    """Where an already parsed document is nested deeper than ``max_depth`` (the first place found)."""
    for path, _, depth in _walk(value, root):
        if depth > max_depth:
            return [f"{path}: nested more than {max_depth} levels deep"]
    return []


def _walk(value: Any, root: str) -> Any:
    """Every value of the document with its path and depth (the root is at depth 1), without recursion."""
    stack: list[tuple[str, Any, int]] = [(root, value, 1)]
    while stack:
        path, item, depth = stack.pop()
        yield path, item, depth
        if isinstance(item, dict):
            stack.extend((_child_path(path, str(k)), v, depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((_child_path(path, i), v, depth + 1) for i, v in enumerate(item))
