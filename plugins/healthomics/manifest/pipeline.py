"""A per-sample pipeline of workflows: the stages' graph, and the templates of their parameters.

A manifest's ``stages`` name, per stage, the stages it needs (by default the one before it) and
parameter templates. A template string may hold

- ``{field}``: a field of the sample (``sample_id``, or any of its ``parameters``);
- ``{stages.<stage>.outputs.<key>}``: a value of that stage run's ``logs/outputs.json``
  (for WDL the keys are ``<workflow>.<output>``, so a key may hold dots);
- ``{stages.<stage>.run_output_uri}`` or ``{stages.<stage>.run_id}``: where that run wrote, and its id.

A string that is exactly one placeholder takes the value with its own type (a list stays a list).
A stage may only read stages it needs, directly or through others, so every value it names exists
by the time it starts. Everything here is pure: checked before anything is submitted, rendered
when a stage starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from healthomics.utils.text import shown

STAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
MAX_STAGES = 20
# Any {...} whose content could be meant as a placeholder (no spaces, no nested braces).
PLACEHOLDER = re.compile(r"\{([^{}\s]+)\}")
FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
STAGE_REFERENCE = re.compile(
    r"stages\.(?P<stage>[A-Za-z][A-Za-z0-9_-]*)\.(?:outputs\.(?P<key>[A-Za-z0-9_.-]+)|(?P<attribute>run_id|run_output_uri))"
)


@dataclass(frozen=True)
class Reference:
    """One placeholder: a sample field, or a value of an earlier stage's run."""

    text: str
    field: str | None = None
    stage: str | None = None
    output: str | None = None  # a key of the stage's outputs.json
    attribute: str | None = None  # run_id or run_output_uri


@dataclass
class StageResult:
    """What a later stage may read of a finished stage run."""

    run_id: str
    run_output_uri: str
    outputs: dict[str, Any] = field(default_factory=dict)


class TemplateError(ValueError):
    """A template names a value that is not there (when a stage is rendered to start)."""


def parse_reference(text: str) -> Reference | None:
    """The placeholder ``{text}`` means, or None if it is no placeholder this format knows."""
    if FIELD.fullmatch(text):
        return Reference(text, field=text)
    match = STAGE_REFERENCE.fullmatch(text)
    if match:
        return Reference(text, stage=match["stage"], output=match["key"], attribute=match["attribute"])
    return None


def references(template: Any) -> Iterator[tuple[str, str]]:
    """Every ``(path, placeholder text)`` in a parameter template (paths like ``parameters.bam``)."""
    stack: list[tuple[str, Any]] = [("parameters", template)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}", v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, str):
            yield from ((path, text) for text in PLACEHOLDER.findall(value))


def stage_needs(stages: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Each stage's ``needs``: as given, else the stage before it (nothing for the first)."""
    needs: dict[str, list[str]] = {}
    previous: str | None = None
    for stage in stages:
        name = str(stage.get("name"))
        given = stage.get("needs")
        needs[name] = [str(n) for n in given] if isinstance(given, list) else ([previous] if previous else [])
        previous = name
    return needs


def topological_order(needs: Mapping[str, Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    """The stages in an order where each comes after what it needs (manifest order where free),
    and every cycle found (each as the path that closes it)."""
    order: list[str] = []
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "visiting" | "done"

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycles.append([*path[path.index(name) :], name])
            return
        state[name] = "visiting"
        for need in needs.get(name, []):
            if need in needs:
                visit(need, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in needs:
        visit(name, [])
    return order, cycles


def ancestors(needs: Mapping[str, Sequence[str]], name: str) -> set[str]:
    """Every stage ``name`` needs, directly or through others."""
    found: set[str] = set()
    stack = list(needs.get(name, []))
    while stack:
        need = stack.pop()
        if need not in found and need in needs:
            found.add(need)
            stack.extend(needs[need])
    return found


def pipeline_problems(stages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str | None, str]]:
    """What is wrong with a pipeline's graph and its stage references, as (location, field, message).

    Sample fields are checked per sample by :func:`field_problems`; this checks what holds for
    every sample: names, ``needs``, cycles, and that each stage reference names a stage the
    stage needs and (when the stage lists its ``outputs``) an output that stage declares.
    """
    problems: list[tuple[str, str | None, str]] = []
    if len(stages) > MAX_STAGES:
        problems.append(("stages", None, f"{len(stages)} stages; at most {MAX_STAGES}"))
    first_seen: dict[str, int] = {}
    for index, stage in enumerate(stages):
        name = stage.get("name")
        where = f"stages[{index}]"
        if not isinstance(name, str) or not STAGE_NAME.fullmatch(name):
            problems.append(
                (where, "name", f"{shown(name)} is not a stage name: a letter, then up to 63 letters, digits, _ or -")
            )
        elif name in first_seen:
            problems.append((where, "name", f"duplicate stage name {name!r} (first at stages[{first_seen[name]}])"))
        else:
            first_seen[name] = index
    needs = stage_needs(stages)
    for index, stage in enumerate(stages):
        name, where = str(stage.get("name")), f"stages[{index}]"
        for need in needs[name]:
            if need == name:
                problems.append((where, "needs", f"stage {name!r} cannot need itself"))
            elif need not in first_seen:
                problems.append((where, "needs", f"unknown stage {need!r} (stages: {', '.join(first_seen)})"))
    _, cycles = topological_order(needs)
    for cycle in cycles:
        if len(cycle) > 2:  # a stage needing itself is reported above
            problems.append(("stages", "needs", "cycle: " + " -> ".join(cycle)))
    declared = {
        str(s.get("name")): {str(o) for o in s["outputs"]} for s in stages if isinstance(s.get("outputs"), list)
    }
    for index, stage in enumerate(stages):
        name, where = str(stage.get("name")), f"stages[{index}]"
        readable = ancestors(needs, name)
        for path, text in references(stage.get("parameters", {})):
            message = _reference_problem(text, name, readable, set(first_seen), declared)
            if message:
                problems.append((where, path, message))
    return problems


def _reference_problem(
    text: str, stage: str, readable: set[str], stages: set[str], declared: Mapping[str, set[str]]
) -> str | None:
    """What is wrong with placeholder ``{text}`` in stage ``stage``'s parameters, if anything."""
    reference = parse_reference(text)
    if reference is None:
        if not text.startswith("stages."):
            return None  # braces that are not a placeholder stay as they are
        return (
            f"{{{text}}} is not a stage reference: use {{stages.<stage>.outputs.<key>}}, "
            "{stages.<stage>.run_output_uri} or {stages.<stage>.run_id}"
        )
    if reference.stage is None:
        return None  # a sample field: checked per sample
    if reference.stage not in stages:
        return f"{{{text}}} names unknown stage {reference.stage!r}"
    if reference.stage == stage:
        return f"{{{text}}}: a stage cannot read its own run"
    if reference.stage not in readable:
        return (
            f"{{{text}}}: stage {stage!r} does not need {reference.stage!r}, so it may start before it "
            f"(add {reference.stage!r} to its needs)"
        )
    outputs = declared.get(reference.stage)
    if reference.output is not None and outputs is not None and reference.output not in outputs:
        listed = ", ".join(sorted(outputs)) or "none"
        return f"{{{text}}}: stage {reference.stage!r} declares no output {reference.output!r} (its outputs: {listed})"
    return None


def field_problems(template: Any, fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The sample-field placeholders of ``template`` this sample has no value for, as (path, message)."""
    missing = []
    for path, text in references(template):
        reference = parse_reference(text)
        if reference is not None and reference.field is not None and reference.field not in fields:
            known = ", ".join(sorted(fields)) or "none"
            missing.append((path, f"unknown sample field {{{text}}} (the sample has: {known})"))
    return missing


def render(template: Any, fields: Mapping[str, Any], stages: Mapping[str, StageResult]) -> Any:
    """``template`` with every placeholder filled; :class:`TemplateError` if a value is not there."""

    def value_of(reference: Reference) -> Any:
        if reference.field is not None:
            if reference.field not in fields:
                raise TemplateError(f"the sample has no field {reference.field!r}")
            return fields[reference.field]
        assert reference.stage is not None
        result = stages.get(reference.stage)
        if result is None:
            raise TemplateError(f"stage {reference.stage!r} has no completed run to read")
        if reference.attribute == "run_id":
            return result.run_id
        if reference.attribute == "run_output_uri":
            return result.run_output_uri
        if reference.output not in result.outputs:
            known = ", ".join(sorted(result.outputs)) or "nothing"
            raise TemplateError(
                f"stage {reference.stage!r} (run {result.run_id}) wrote no output {reference.output!r} "
                f"in its outputs.json (it has: {known})"
            )
        return result.outputs[reference.output]

    return _fill(template, value_of)


def _fill(template: Any, value_of: Callable[[Reference], Any]) -> Any:
    if isinstance(template, dict):
        return {k: _fill(v, value_of) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, value_of) for v in template]
    if not isinstance(template, str):
        return template
    whole = PLACEHOLDER.fullmatch(template)
    if whole and (reference := parse_reference(whole.group(1))) is not None:
        return value_of(reference)

    def substitute(match: re.Match[str]) -> str:
        reference = parse_reference(match.group(1))
        return match.group(0) if reference is None else str(value_of(reference))

    return PLACEHOLDER.sub(substitute, template)
