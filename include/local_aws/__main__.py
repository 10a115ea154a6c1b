"""``python -m local_aws up|down|status``: the local stack as background processes.

``up`` starts moto and the HealthOmics emulator on free ports and writes
``<state-dir>/stack.json`` (URLs, pids, logs) and ``<state-dir>/stack.env`` (the
``AWS_*`` and ``AIRFLOW_CONN_AWS_DEFAULT`` variables; ``source`` it). ``down`` stops
them. ``status`` probes both and exits non-zero if either does not answer.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import urllib.request
from pathlib import Path

from local_aws.processes import stop_process_group
from local_aws.stack import LocalAWS


def _up(state_dir: Path, time_scale: float) -> int:
    state_file = state_dir / "stack.json"
    if state_file.exists() and _status(state_dir, quiet=True) == 0:
        print(f"local stack already running (see {state_file})")
        return 0
    stack = LocalAWS(workdir=state_dir, time_scale=time_scale, detach=True).start()
    state = stack.state()
    state_file.write_text(json.dumps(state, indent=2))
    (state_dir / "stack.env").write_text(
        "".join(f"export {key}={shlex.quote(value)}\n" for key, value in state["env"].items())
    )
    print(f"moto (S3, SQS, SNS, STS): {stack.moto_url}")
    print(f"HealthOmics emulator:     {stack.omics_url} (time scale {time_scale:g})")
    print(f"environment:              source {state_dir / 'stack.env'}")
    return 0


def _down(state_dir: Path) -> int:
    state_file = state_dir / "stack.json"
    if not state_file.exists():
        print("local stack is not running")
        return 0
    state = json.loads(state_file.read_text())
    for name in ("omics", "moto"):
        stop_process_group(int(state[name]["pid"]))
    state_file.unlink()
    print("local stack stopped")
    return 0


def _status(state_dir: Path, quiet: bool = False) -> int:
    state_file = state_dir / "stack.json"
    if not state_file.exists():
        if not quiet:
            print("local stack is not running")
        return 1
    state = json.loads(state_file.read_text())
    probes = {
        "moto": state["moto"]["url"] + "/moto-api/data.json",
        "omics": state["omics"]["url"] + "/_emulator/health",
    }
    failed = 0
    for name, url in probes.items():
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                ok = response.status == 200
        except OSError:
            ok = False
        failed += not ok
        if not quiet:
            print(f"{name:6} {'up' if ok else 'DOWN'}  {state[name]['url']}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_aws", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--state-dir", type=Path, default=Path(".local"))
    parser.add_argument("--time-scale", type=float, default=3600.0)
    args = parser.parse_args(argv)
    if args.command == "up":
        return _up(args.state_dir, args.time_scale)
    if args.command == "down":
        return _down(args.state_dir)
    return _status(args.state_dir)


if __name__ == "__main__":
    sys.exit(main())
