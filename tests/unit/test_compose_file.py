"""docker-compose.yaml cannot be started here (no Docker engine); keep it honest instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from omics_emulator.__main__ import parse_args

REPO = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load((REPO / "docker-compose.yaml").read_text()))


def pinned(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==([^\s;]+)", (REPO / "constraints.txt").read_text(), re.M)
    assert match, f"{package} is not pinned in constraints.txt"
    return match.group(1)


def test_moto_image_matches_the_pinned_moto() -> None:
    assert compose()["services"]["moto"]["image"] == f"motoserver/moto:{pinned('moto')}"


def test_emulator_command_line_is_one_the_emulator_accepts() -> None:
    command = compose()["services"]["omics-emulator"]["command"][-1]
    emulator_part = command.split("python -m omics_emulator", 1)[1].split()
    args = parse_args(emulator_part)
    assert (args.host, args.port, args.s3_endpoint_url) == ("0.0.0.0", 9100, "http://moto:5000")
    assert "-c constraints.txt" in command  # same pinned versions as everywhere else
