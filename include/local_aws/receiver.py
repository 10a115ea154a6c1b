"""A real HTTP server standing in for a LIMS or WES API that receives run state callbacks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A LIMS stand-in: records every callback; answers ``status`` (200 unless told otherwise).

    :meth:`close` takes it off the network; :meth:`start` brings it back on the same port
    (a receiver that was down for a while, at the address its callers know).
    """

    def __init__(self, port: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.status = 200
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.calls.append(
                    {"path": self.path, "key": self.headers.get("Idempotency-Key"), "body": json.loads(body)}
                )
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
