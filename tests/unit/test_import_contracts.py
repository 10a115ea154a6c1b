"""The import contracts of pyproject.toml hold, and lint-imports notices when they are broken.

Each case copies the package, adds one import a newcomer might write, and runs the real
``lint-imports`` over the copy with the project's own contracts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contracts_over_a_copy(tmp_path: Path) -> Path:
    """A copy of plugins/healthomics and a config holding the project's contracts on ``healthomics``."""
    shutil.copytree(
        REPO / "plugins" / "healthomics", tmp_path / "healthomics", ignore=shutil.ignore_patterns("__pycache__")
    )
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[tool.importlinter]", 'root_packages = ["healthomics"]', ""]
    for contract in config["contracts"]:
        if contract["type"] == "forbidden":  # its forbidden packages are not in the copy
            continue
        lines.append("[[tool.importlinter.contracts]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in contract.items()]
        lines.append("")
    (tmp_path / "pyproject.toml").write_text("\n".join(lines))
    return tmp_path


def lint(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *(f"--contract={c}" for c in contracts)],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def add_import(root: Path, module: str, statement: str) -> None:
    path = root / "healthomics" / module
    path.write_text(path.read_text() + f"\n{statement}  # the import under test\n")


def test_the_package_keeps_its_contracts(tmp_path: Path) -> None:
    result = lint(contracts_over_a_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract", "named"),
    [
        # a hook reaching up into a pipeline
        ("hooks/omics.py", "from healthomics.flowcell import qc", "layers", "healthomics.hooks.omics"),
        # one pipeline leaning on another beside it
        (
            "intake/manifests.py",
            "from healthomics.run_events import processor",
            "layers",
            "healthomics.intake.manifests",
        ),
        # two modules of one package importing each other
        ("flowcell/plan.py", "from healthomics.flowcell import qc", "acyclic", ".qc -> .plan"),
    ],
)
def test_lint_imports_fails_on_an_import_that_breaks_a_contract(
    tmp_path: Path, module: str, statement: str, contract: str, named: str
) -> None:
    root = contracts_over_a_copy(tmp_path)
    assert lint(root, contract).returncode == 0
    add_import(root, module, statement)
    result = lint(root, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout
    assert named in result.stdout.split("Broken contracts")[1], result.stdout
