"""The omics rest-json protocol, driven entirely by botocore's service model.

Routing (method + ``requestUri``), where each input member is read from (URI label,
query string, JSON body), the constraints a request must satisfy (required, length,
range, enum, pattern, union) and the shape of every response all come from
``botocore/data/omics/*/service-2.json``. Nothing about the wire format is restated
by hand, so a request boto3 can send is a request the emulator can read, and a
response the emulator sends is one botocore can parse.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

import botocore.session
import regex  # the model's patterns use \p{L}-style classes that `re` lacks
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

SERVICE_MODEL: ServiceModel = botocore.session.get_session().get_service_model("omics")

# The operations this emulator implements (a subset of the service).
OPERATIONS: tuple[str, ...] = (
    "StartRun",
    "GetRun",
    "ListRuns",
    "ListRunTasks",
    "GetRunTask",
    "CancelRun",
    "DeleteRun",
    "StartRunBatch",
    "GetBatch",
    "ListBatch",
    "ListRunsInBatch",
    "CancelRunBatch",
    "DeleteRunBatch",
    "DeleteBatch",
    "CreateWorkflow",
    "GetWorkflow",
    "ListWorkflows",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
)


def structure_shape(name: str) -> StructureShape:
    shape = SERVICE_MODEL.shape_for(name)
    if not isinstance(shape, StructureShape):
        raise TypeError(f"{name} is not a structure")
    return shape


class ProtocolError(Exception):
    """A request that cannot be read or does not satisfy the model."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Route:
    operation: OperationModel
    method: str
    pattern: re.Pattern[str]
    labels: tuple[str, ...]
    literal_length: int


def _compile_route(operation: OperationModel) -> Route:
    uri = operation.http["requestUri"].split("?", 1)[0]
    labels: list[str] = []
    parts: list[str] = []
    literal_length = 0
    for piece in re.split(r"(\{[^}]+\})", uri):
        if piece.startswith("{"):
            label = piece[1:-1]
            greedy = label.endswith("+")
            labels.append(label.rstrip("+"))
            parts.append("(.+)" if greedy else "([^/]+)")
        else:
            literal_length += len(piece)
            parts.append(re.escape(piece))
    return Route(
        operation=operation,
        method=operation.http["method"],
        pattern=re.compile("^" + "".join(parts) + "$"),
        labels=tuple(labels),
        literal_length=literal_length,
    )


class Router:
    """Finds the operation for an HTTP method and raw (still percent-encoded) path."""

    def __init__(self, operation_names: tuple[str, ...] = OPERATIONS) -> None:
        routes = [_compile_route(SERVICE_MODEL.operation_model(name)) for name in operation_names]
        # Literal segments win over labels: POST /runBatch/cancel is CancelRunBatch,
        # not a label match of some other /runBatch/{batchId} route.
        self._routes = sorted(routes, key=lambda r: -r.literal_length)

    def match(self, method: str, raw_path: str) -> tuple[OperationModel, dict[str, str]]:
        path_matched = False
        for route in self._routes:
            found = route.pattern.match(raw_path)
            if not found:
                continue
            path_matched = True
            if route.method != method:
                continue
            params = {label: unquote(value) for label, value in zip(route.labels, found.groups(), strict=True)}
            return route.operation, params
        if path_matched:
            raise ProtocolError("UnknownOperationException", f"{method} is not supported on {raw_path}")
        raise ProtocolError("UnknownOperationException", f"No operation matches {method} {raw_path}")


# ---------------------------------------------------------------------------
# Requests


def _convert_scalar(shape: Shape, raw: str, where: str) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(raw)
        except ValueError as err:
            raise ProtocolError("SerializationException", f"'{raw}' at '{where}' is not an integer") from err
    if shape.type_name == "boolean":
        if raw not in ("true", "false"):
            raise ProtocolError("SerializationException", f"'{raw}' at '{where}' is not a boolean")
        return raw == "true"
    return raw


def _from_json(shape: Shape, value: Any, where: str) -> Any:
    """Type-check a JSON body value against its shape and decode blobs."""
    if value is None:
        return None
    if getattr(shape, "is_document_type", False):
        return value
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            raise ProtocolError("SerializationException", f"Expected an object at '{where}'")
        out = {}
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                continue  # like the real front end, unknown members are ignored
            out[key] = _from_json(member, item, f"{where}.{key}" if where else key)
        return out
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            raise ProtocolError("SerializationException", f"Expected an array at '{where}'")
        return [_from_json(shape.member, item, f"{where}.{i + 1}.member") for i, item in enumerate(value)]
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            raise ProtocolError("SerializationException", f"Expected an object at '{where}'")
        return {k: _from_json(shape.value, v, f"{where}.{k}") for k, v in value.items()}
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError("SerializationException", f"Expected an integer at '{where}'")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ProtocolError("SerializationException", f"Expected a boolean at '{where}'")
        return value
    if kind == "blob":
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError) as err:
            raise ProtocolError("SerializationException", f"Expected base64 at '{where}'") from err
    if kind == "string":
        if not isinstance(value, str):
            raise ProtocolError("SerializationException", f"Expected a string at '{where}'")
        return value
    return value


def parse_request(
    operation: OperationModel,
    path_params: dict[str, str],
    query: dict[str, list[str]],
    body: bytes,
) -> dict[str, Any]:
    """Read an operation's input from the HTTP request, as boto3 serialized it."""
    shape = operation.input_shape
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    body_doc: dict[str, Any] = {}
    if body.strip():
        try:
            loaded = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise ProtocolError("SerializationException", "Request body is not valid JSON") from err
        if not isinstance(loaded, dict):
            raise ProtocolError("SerializationException", "Request body must be a JSON object")
        body_doc = loaded
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            if name in path_params:
                params[name] = _convert_scalar(member, path_params[name], name)
        elif location == "querystring":
            values = query.get(wire_name)
            if values is None:
                continue
            if isinstance(member, ListShape):
                params[name] = [_convert_scalar(member.member, v, name) for v in values]
            else:
                params[name] = _convert_scalar(member, values[0], name)
        elif location == "header":
            continue  # no omics operation we serve reads input headers
        elif wire_name in body_doc:
            params[name] = _from_json(member, body_doc[wire_name], name)
    return params


@cache
def _compiled_pattern(pattern: str) -> Any:
    return regex.compile(pattern)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return json.dumps(value, default=str)


def validate_shape(shape: Shape, value: Any, where: str, problems: list[str]) -> None:
    """Collect AWS-style constraint violations ("Value X at 'p' failed to satisfy ...")."""
    meta = shape.metadata
    if getattr(shape, "is_document_type", False):
        return
    if isinstance(shape, StructureShape):
        for required in shape.required_members:
            if value.get(required) is None:
                path = f"{where}.{required}" if where else required
                problems.append(f"Value null at '{path}' failed to satisfy constraint: Member must not be null")
        if meta.get("union"):
            present = [k for k, v in value.items() if v is not None]
            if len(present) != 1:
                problems.append(
                    f"Value at '{where}' failed to satisfy constraint: exactly one of "
                    f"[{', '.join(shape.members)}] must be set"
                )
        for key, item in value.items():
            member = shape.members.get(key)
            if member is not None and item is not None:
                validate_shape(member, item, f"{where}.{key}" if where else key, problems)
        return
    if isinstance(shape, ListShape):
        _check_length(len(value), meta, value, where, problems)
        for i, item in enumerate(value):
            validate_shape(shape.member, item, f"{where}.{i + 1}.member", problems)
        return
    if isinstance(shape, MapShape):
        _check_length(len(value), meta, value, where, problems)
        for key, item in value.items():
            validate_shape(shape.key, key, f"{where}.key", problems)
            validate_shape(shape.value, item, f"{where}.{key}", problems)
        return
    if shape.type_name in ("integer", "long"):
        if "min" in meta and value < meta["min"]:
            problems.append(
                f"Value {value} at '{where}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {meta['min']}"
            )
        if "max" in meta and value > meta["max"]:
            problems.append(
                f"Value {value} at '{where}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {meta['max']}"
            )
        return
    if shape.type_name == "string":
        _check_length(len(value), meta, value, where, problems)
        enum = meta.get("enum")
        if enum and value not in enum:
            problems.append(
                f"Value {_describe(value)} at '{where}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(enum)}]"
            )
        pattern = meta.get("pattern")
        if pattern and _compiled_pattern(pattern).fullmatch(value) is None:
            problems.append(
                f"Value {_describe(value)} at '{where}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )


def _check_length(length: int, meta: dict[str, Any], value: Any, where: str, problems: list[str]) -> None:
    if "min" in meta and length < meta["min"]:
        problems.append(
            f"Value {_describe(value)} at '{where}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {meta['min']}"
        )
    if "max" in meta and length > meta["max"]:
        shown = _describe(value) if length <= 200 else f"of length {length}"
        problems.append(
            f"Value {shown} at '{where}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {meta['max']}"
        )


def validate_request(operation: OperationModel, params: dict[str, Any]) -> None:
    """Raise a ValidationException listing every violated constraint, like AWS does."""
    if operation.input_shape is None:
        return
    problems: list[str] = []
    validate_shape(operation.input_shape, params, "", problems)
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise ProtocolError("ValidationException", f"{count} validation {noun} detected: " + "; ".join(problems))


# ---------------------------------------------------------------------------
# Responses


def format_timestamp(epoch_seconds: float) -> str:
    """ISO 8601 with microseconds and offset, as in the service docs' examples."""
    return dt.datetime.fromtimestamp(epoch_seconds, tz=dt.UTC).isoformat()


def _to_json(shape: Shape, value: Any, where: str, strict: bool) -> Any:
    if getattr(shape, "is_document_type", False):
        return value
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            raise TypeError(f"{where}: expected a dict for {shape.name}")
        unknown = set(value) - set(shape.members)
        if unknown and strict:
            raise TypeError(f"{where}: {sorted(unknown)} are not members of {shape.name}")
        return {
            shape.members[k].serialization.get("name", k): _to_json(shape.members[k], v, f"{where}.{k}", strict)
            for k, v in value.items()
            if v is not None and k in shape.members
        }
    if isinstance(shape, ListShape):
        return [_to_json(shape.member, item, f"{where}[]", strict) for item in value]
    if isinstance(shape, MapShape):
        return {k: _to_json(shape.value, v, f"{where}.{k}", strict) for k, v in value.items()}
    if shape.type_name == "timestamp":
        return format_timestamp(float(value))
    if shape.type_name == "blob":
        return base64.b64encode(value).decode()
    return value


# HTTP forbids a body on these (RFC 9110 §15.3.5): a client reads none, so bytes sent anyway
# stay in the keep-alive stream and become the start of the next response's status line.
_BODILESS_STATUSES = frozenset({204, 304})


def serialize_response(
    operation: OperationModel, result: dict[str, Any] | None, strict: bool = True
) -> tuple[int, bytes]:
    """Render an operation's output, refusing members the model does not have.

    The strictness is deliberate: a field botocore would silently drop is a bug in
    the emulator, and it should surface in the emulator's own tests.
    """
    status = int(operation.http.get("responseCode", 200))
    shape = operation.output_shape
    if shape is None or status in _BODILESS_STATUSES:
        if result:
            raise TypeError(f"{operation.name} has no output shape but the handler returned {result}")
        return status, b""
    rendered = _to_json(shape, result or {}, operation.name, strict)
    return status, json.dumps(rendered).encode()


def error_codes(operation: OperationModel) -> set[str]:
    return {shape.name for shape in operation.error_shapes}
