"""``python -m omics_emulator``: run the HealthOmics emulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .backend import Backend
from .config import EmulatorConfig
from .server import serve


def _quota(text: str) -> tuple[str, float | None]:
    operation, _, rate = text.partition("=")
    if not operation or not rate:
        raise argparse.ArgumentTypeError("use OPERATION=TPS, e.g. StartRun=1 (0 = unlimited)")
    value = float(rate)
    return operation, (value if value > 0 else None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m omics_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--config", type=Path, help="JSON file with settings (see omics_emulator/config.py)")
    parser.add_argument("--time-scale", type=float, help="emulated seconds per real second (default 3600)")
    parser.add_argument("--region")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--s3-endpoint-url", help="S3 (moto) endpoint for outputs and s3UriSettings")
    parser.add_argument("--events-queue-url", help="SQS queue for 'Run Status Change' events")
    parser.add_argument("--quota", type=_quota, action="append", default=[], metavar="OP=TPS")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    values: dict[str, Any] = json.loads(args.config.read_text()) if args.config else {}
    overrides = {
        "time_scale": args.time_scale,
        "region": args.region,
        "seed": args.seed,
        "s3_endpoint_url": args.s3_endpoint_url,
        "events_queue_url": args.events_queue_url,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    if args.quota:
        values.setdefault("quotas", {}).update(dict(args.quota))
    return EmulatorConfig.from_dict(values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    backend = Backend(build_config(args))
    server = serve(backend, args.host, args.port)
    port = server.server_address[1]
    if args.port_file:
        args.port_file.write_text(str(port))

    def stop(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %d: shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"omics emulator listening on {server.url} (time scale {backend.clock.time_scale:g})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        backend.close()  # deliver pending events and S3 writes before exiting
    return 0


if __name__ == "__main__":
    sys.exit(main())
