"""What HealthOmics would refuse, checked before anything is submitted, from botocore's own model.

botocore checks types and required members on the client, not lengths, enums or patterns;
those the service checks, and for a run batch one bad entry refuses the whole batch. Every
request this package builds is checked here against the installed botocore's ``omics`` model
(the shapes of ``StartRun``, ``StartRunBatch``, ``InlineSetting``, ...), plus the limits the
model does not carry (the 50,000-byte parameter file, 50 tags a run), so the service never
sees input it would refuse. The model's patterns use ``\\p{..}`` Unicode classes: they are
compiled with ``regex``, as the project's emulator checks them.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import botocore.session
import regex
from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape

from healthomics.utils.text import shown

# Limits the service applies that botocore's model does not express.
MAX_PARAMETERS_BYTES = 50_000  # "Run parameter file" (fixed quota)
MAX_RUN_TAGS = 50  # StartRun tags


@cache
def omics_model() -> ServiceModel:
    """The installed botocore's model of the ``omics`` service (loaded once per process)."""
    return botocore.session.get_session().get_service_model("omics")


@cache
def _pattern(text: str) -> Any:
    return regex.compile(text)


def shape_problems(shape: Shape, value: Any, path: str) -> list[str]:
    """Every length, range, enum and pattern constraint of ``shape`` that ``value`` breaks."""
    problems: list[str] = []
    _check(shape, value, path, problems)
    return problems


def named_shape_problems(shape_name: str, value: Any, path: str) -> list[str]:
    """:func:`shape_problems` for a shape of the model by name (e.g. ``RunSettingId``)."""
    return shape_problems(omics_model().shape_for(shape_name), value, path)


def request_problems(operation: str, request: dict[str, Any]) -> list[str]:
    """Why the service would refuse ``request`` to ``operation`` (empty if it would not)."""
    input_shape = omics_model().operation_model(operation).input_shape
    problems = shape_problems(input_shape, request, "") if input_shape is not None else []
    for parameters_path, parameters in _parameter_sets(operation, request):
        size = len(json.dumps(parameters, separators=(",", ":")).encode())
        if size > MAX_PARAMETERS_BYTES:
            limit = f"a run takes at most {MAX_PARAMETERS_BYTES:,}"
            problems.append(f"{parameters_path}: {size:,} bytes of parameters; {limit}")
    tags = request.get("tags")
    if operation == "StartRun" and isinstance(tags, dict) and len(tags) > MAX_RUN_TAGS:
        problems.append(f"tags: {len(tags)} tags; a run takes at most {MAX_RUN_TAGS}")
    return problems


def as_batch_run(request: dict[str, Any], run_setting_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A StartRun request as the ``defaultRunSetting`` and one ``InlineSetting`` of a run batch.

    What a batch's run may set for itself (name, outputUri, parameters, priority, ``tags`` as
    ``runTags``, ...) goes in the setting, the rest in the default, both by the installed model's
    shapes. None where a batch cannot run the request: a Ready2Run workflow, a re-run (``runId``),
    or a field no batch takes. The ``requestId`` stays out (a batch has one of its own).
    """
    model = omics_model()
    if "DefaultRunSetting" not in model.shape_names or request.get("workflowType") == "READY2RUN":
        return None
    inline, default_setting = model.shape_for("InlineSetting"), model.shape_for("DefaultRunSetting")
    assert isinstance(inline, StructureShape) and isinstance(default_setting, StructureShape)
    per_run = set(inline.members) - {"runSettingId"}
    batch_level = set(default_setting.members) - per_run
    fields = {("runTags" if key == "tags" else key): value for key, value in request.items() if key != "requestId"}
    if not set(fields) <= per_run | batch_level:
        return None
    default = {key: value for key, value in fields.items() if key in batch_level}
    setting = {"runSettingId": run_setting_id, **{key: value for key, value in fields.items() if key in per_run}}
    return default, setting


def _parameter_sets(operation: str, request: dict[str, Any]) -> list[tuple[str, Any]]:
    if operation == "StartRun":
        return [("parameters", request["parameters"])] if "parameters" in request else []
    if operation == "StartRunBatch":
        found = []
        default = request.get("defaultRunSetting") or {}
        if "parameters" in default:
            found.append(("defaultRunSetting.parameters", default["parameters"]))
        for i, setting in enumerate((request.get("batchRunSettings") or {}).get("inlineSettings") or []):
            if "parameters" in setting:
                found.append((f"batchRunSettings.inlineSettings[{i}].parameters", setting["parameters"]))
        return found
    return []


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _at(path: str) -> str:
    """How a message names its place: ``"path: "``, or nothing for a value checked on its own."""
    return f"{path}: " if path else ""


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    if value is None or getattr(shape, "is_document_type", False):
        return
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            problems.append(f"{_at(path)}must be an object, got {type(value).__name__}")
            return
        for required in shape.required_members:
            if value.get(required) is None:
                problems.append(f"{_at(_join(path, required))}required")
        for key, item in value.items():
            member = shape.members.get(key)
            if member is not None:
                _check(member, item, _join(path, key), problems)
        return
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            problems.append(f"{_at(path)}must be a list, got {type(value).__name__}")
            return
        _check_size(len(value), meta, "entries", path, problems)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", problems)
        return
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            problems.append(f"{_at(path)}must be an object, got {type(value).__name__}")
            return
        _check_size(len(value), meta, "entries", path, problems)
        for key, item in value.items():
            _check(shape.key, key, f"{path} key {shown(key)}", problems)
            _check(shape.value, item, f"{path}.{key}", problems)
        return
    if shape.type_name in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{_at(path)}must be an integer, got {shown(value)}")
            return
        if "min" in meta and value < meta["min"]:
            problems.append(f"{_at(path)}{value} is below the service's minimum of {meta['min']}")
        if "max" in meta and value > meta["max"]:
            problems.append(f"{_at(path)}{value} is above the service's maximum of {meta['max']}")
        return
    if shape.type_name == "string":
        if not isinstance(value, str):
            problems.append(f"{_at(path)}must be a string, got {type(value).__name__}")
            return
        _check_size(len(value), meta, "characters", path, problems)
        enum = meta.get("enum")
        if enum and value not in enum:
            problems.append(f"{_at(path)}{shown(value)} is not one of {', '.join(enum)}")
        pattern = meta.get("pattern")
        if pattern and _pattern(pattern).fullmatch(value) is None:
            allowed = _describe_pattern(pattern)
            problems.append(f"{_at(path)}{shown(value)} has characters the service refuses ({allowed})")


def _check_size(size: int, meta: dict[str, Any], unit: str, path: str, problems: list[str]) -> None:
    if "min" in meta and size < meta["min"]:
        problems.append(f"{_at(path)}{size} {unit}; the service needs at least {meta['min']}")
    if "max" in meta and size > meta["max"]:
        problems.append(f"{_at(path)}{size:,} {unit}; the service takes at most {meta['max']:,}")


def _describe_pattern(pattern: str) -> str:
    if pattern.startswith("[\\p{L}"):
        return "letters, marks, spaces, symbols, digits and punctuation only: no control or invisible characters"
    return f"pattern {pattern}"
