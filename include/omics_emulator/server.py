"""HTTP front end: the omics rest-json API plus an admin API under ``/_emulator/``.

Admin API (JSON in, JSON out; the real service never serves these paths):

==========================================  =============================================
``GET    /_emulator/health``                readiness: ``{"status": "ok", ...}``
``POST   /_emulator/reset``                 forget resources, faults, counters; ``{"config": true}``
                                           also restores the startup settings
``GET    /_emulator/config``                current settings
``PATCH  /_emulator/config``                change settings (partial, see ``config.py``)
``GET    /_emulator/counters``              calls, HTTP statuses and errors per operation
``GET    /_emulator/events``                events sent to SQS: count, failures, their ids
``DELETE /_emulator/counters``              zero the counters
``GET    /_emulator/faults``                injected fault rules and how often they fired
``POST   /_emulator/faults``                add a rule (see ``faults.py``)
``DELETE /_emulator/faults[/<id>]``         remove one rule or all
``GET    /_emulator/clock``                 emulated now and time scale
``POST   /_emulator/clock/advance``         ``{"seconds": N}``: jump ahead, then settle
``POST   /_emulator/settle``                apply due transitions, wait for S3 and events
==========================================  =============================================
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .backend import Backend
from .errors import ERROR_STATUS, OmicsError, throttled
from .model import (
    ProtocolError,
    Router,
    error_codes,
    format_timestamp,
    parse_request,
    serialize_response,
    validate_request,
)

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_emulator"
# Errors any operation can answer, modeled or not, because the front end produces them.
_FRONT_END_ERRORS = {
    "SerializationException",
    "UnknownOperationException",
    "MissingAuthenticationTokenException",
    "ServiceUnavailableException",
    "ThrottlingException",
    "InternalServerException",
    "AccessDeniedException",
    "RequestTimeoutException",
}


class Counters:
    """Per-operation call counts, HTTP statuses and error codes (for tests and benchmarks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, int] = defaultdict(int)
        self._statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def record(self, operation: str, status: int, error: str | None) -> None:
        with self._lock:
            self._calls[operation] += 1
            self._statuses[operation][str(status)] += 1
            if error:
                self._errors[operation][error] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            operations = {
                op: {
                    "calls": calls,
                    "statuses": dict(self._statuses[op]),
                    "errors": dict(self._errors[op]),
                    "throttled": self._errors[op].get("ThrottlingException", 0),
                }
                for op, calls in sorted(self._calls.items())
            }
            return {
                "operations": operations,
                "totalCalls": sum(self._calls.values()),
                "totalThrottled": sum(e.get("ThrottlingException", 0) for e in self._errors.values()),
            }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._statuses.clear()
            self._errors.clear()


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        super().__init__(address, EmulatorRequestHandler)
        self.backend = backend
        self.router = Router()
        self.counters = Counters()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK
        # add ~40 ms to every keep-alive call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- plumbing --------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if payload:
            self.send_header("Content-Type", "application/json")
        if status != 204:  # a 204 carries neither a body nor a Content-Length
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if url.path == ADMIN_PREFIX or url.path.startswith(ADMIN_PREFIX + "/"):
            self._admin(url.path[len(ADMIN_PREFIX) :].strip("/"), body)
        else:
            self._aws(url.path, url.query, body)

    # -- the AWS API --------------------------------------------------------

    def _aws_error(self, request_id: str, code: str, message: str) -> tuple[int, bytes, dict[str, str]]:
        headers = {"x-amzn-RequestId": request_id, "x-amzn-ErrorType": code}
        return ERROR_STATUS[code], json.dumps({"message": message}).encode(), headers

    def _aws(self, path: str, query: str, body: bytes) -> None:
        server = self.server
        request_id = str(uuid.uuid4())
        operation_name = "Unknown"
        try:
            operation, path_params = server.router.match(self.command, path)
            operation_name = operation.name
            status, payload, headers = self._call(operation, path_params, query, body, request_id)
        except ProtocolError as err:
            status, payload, headers = self._aws_error(request_id, err.code, err.message)
        error = headers.get("x-amzn-ErrorType")
        server.counters.record(operation_name, status, error)
        self._send(status, payload, headers)

    def _call(
        self, operation: Any, path_params: dict[str, str], query: str, body: bytes, request_id: str
    ) -> tuple[int, bytes, dict[str, str]]:
        backend = self.server.backend
        headers = {"x-amzn-RequestId": request_id}
        try:
            if "Authorization" not in self.headers:
                raise OmicsError("MissingAuthenticationTokenException", "Missing Authentication Token")
            injected = backend.faults.request_error(operation.name)
            if injected is not None:
                raise injected
            if not backend.quotas.try_acquire(operation.name):
                raise throttled()
            params = parse_request(operation, path_params, parse_qs(query, keep_blank_values=True), body)
            validate_request(operation, params)
            result = backend.handle(operation.name, params)
            status, payload = serialize_response(operation, result, strict=backend.config.strict_responses)
            return status, payload, headers
        except ProtocolError as err:
            return self._aws_error(request_id, err.code, err.message)
        except OmicsError as err:
            if err.code not in error_codes(operation) and err.code not in _FRONT_END_ERRORS:
                log.error("%s answered %s, which the model does not declare for it", operation.name, err.code)
                return self._aws_error(request_id, "InternalServerException", f"undeclared error {err.code}")
            return self._aws_error(request_id, err.code, err.message)
        except Exception:
            log.exception("%s failed", operation.name)
            return self._aws_error(request_id, "InternalServerException", "Internal error in the emulator")

    # -- the admin API --------------------------------------------------------

    def _admin(self, route: str, body: bytes) -> None:
        try:
            document = json.loads(body) if body.strip() else {}
            status, result = self._admin_route(self.command, route, document)
        except (ValueError, TypeError, KeyError) as err:
            status, result = 400, {"error": str(err)}
        self._send(status, json.dumps(result, default=str).encode())

    def _admin_route(self, method: str, route: str, document: dict[str, Any]) -> tuple[int, Any]:
        server = self.server
        backend = server.backend
        if (method, route) == ("GET", "health"):
            return 200, {"status": "ok", **self._clock()}
        if (method, route) == ("POST", "reset"):
            backend.reset(restore_config=bool(document.get("config", False)))
            server.counters.reset()
            return 200, {"status": "reset"}
        if route == "config":
            if method == "PATCH":
                backend.reconfigure(document)
            elif method != "GET":
                return 405, {"error": "use GET or PATCH"}
            return 200, backend.config.to_dict()
        if route == "counters":
            if method == "DELETE":
                server.counters.reset()
            return 200, server.counters.snapshot()
        if (method, route) == ("GET", "events"):
            publisher = backend.events
            return 200, publisher.summary() if publisher else {"queue": None, "sent": 0, "failed": 0, "ids": []}
        if route == "faults":
            if method == "POST":
                return 201, backend.faults.add(document).as_dict()
            if method == "DELETE":
                backend.faults.clear()
            return 200, {"faults": backend.faults.as_list()}
        if route.startswith("faults/") and method == "DELETE":
            removed = backend.faults.remove(route.split("/", 1)[1])
            return (200, {"removed": True}) if removed else (404, {"error": "no such fault"})
        if (method, route) == ("GET", "clock"):
            return 200, self._clock()
        if (method, route) == ("POST", "clock/advance"):
            backend.advance_clock(float(document["seconds"]))
            return 200, self._clock()
        if (method, route) == ("POST", "settle"):
            settled = backend.settle(timeout=float(document.get("timeout", 30)))
            return 200, {"settled": settled, **self._clock()}
        return 404, {"error": f"no admin route {method} /_emulator/{route}"}

    def _clock(self) -> dict[str, Any]:
        clock = self.server.backend.clock
        now = clock.now()
        return {"now": now, "nowIso": format_timestamp(now), "timeScale": clock.time_scale}


def serve(backend: Backend, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
    """Bind (port 0 picks a free one); call ``serve_forever`` on the result."""
    return EmulatorServer((host, port), backend)
