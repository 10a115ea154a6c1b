"""Errors in the service's rest-json wire format.

HealthOmics answers errors with the modeled HTTP status, the error code in the
``x-amzn-ErrorType`` header and ``{"message": ...}`` in the body; botocore reads the
code from the header first (``parsers.RestJSONParser``), so that is what we send.
HTTP statuses come from the error shapes of botocore's own service model.
"""

from __future__ import annotations

from .model import SERVICE_MODEL

# Codes that the real front end returns although no omics operation models them.
_UNMODELED_STATUS = {
    "SerializationException": 400,
    "UnknownOperationException": 404,
    "MissingAuthenticationTokenException": 403,
    "ServiceUnavailableException": 503,
}


def _modeled_status() -> dict[str, int]:
    statuses: dict[str, int] = {}
    for shape_name in SERVICE_MODEL.shape_names:
        shape = SERVICE_MODEL.shape_for(shape_name)
        error = shape.metadata.get("error")
        if shape.metadata.get("exception") and error:
            statuses[shape_name] = int(error["httpStatusCode"])
    return statuses


ERROR_STATUS: dict[str, int] = {**_UNMODELED_STATUS, **_modeled_status()}


class OmicsError(Exception):
    """An error the emulator answers with, in the service's wire format."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]


def validation(message: str) -> OmicsError:
    return OmicsError("ValidationException", message)


def not_found(kind: str, resource_id: str) -> OmicsError:
    return OmicsError("ResourceNotFoundException", f"{kind} {resource_id} not found in the current Region")


def conflict(message: str) -> OmicsError:
    return OmicsError("ConflictException", message)


def throttled() -> OmicsError:
    return OmicsError("ThrottlingException", "Rate exceeded")
