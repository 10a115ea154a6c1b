"""make compat: the runtime wheel in a fresh virtualenv per package set, then the unit tier and the flowcell.

    python -m healthomics_compat [--sets mwaa-3.3.1,mwaa-3.2.1,development] [--workdir .compat]

``--sets newest-mwaa`` names the newest MWAA set (what ``make test`` runs).

Prints set -> versions / installed / provider / DAGs / unit tier / flowcell / real Airflow and keeps each set's
latest result in ``<workdir>/results.json``; a run of every set also writes
``docs/compat/results.md``. Exits non-zero when any set run now fails a check.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from healthomics_compat.checks import SUITES, run_environment
from healthomics_compat.environments import Environment, InstallError, build_wheel, wheel_digest
from healthomics_compat.sets import MWAA_IMAGES_COMMIT, NEWEST_MWAA, REPO, SETS

EXPECTED_DAGS = sorted(path.stem for path in (REPO / "dags").glob("healthomics_*.py"))
COLUMNS = (
    "set",
    "Airflow",
    "amazon",
    "boto3",
    "wheel install",
    "provider listed",
    "DAGs",
    "unit tier",
    "flowcell",
    "real Airflow",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthomics_compat", description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of: {', '.join(SETS)}")
    parser.add_argument("--workdir", type=Path, default=REPO / ".compat")
    args = parser.parse_args(argv)
    names = [NEWEST_MWAA if n.strip() == "newest-mwaa" else n.strip() for n in args.sets.split(",") if n.strip()]
    if unknown := [name for name in names if name not in SETS]:
        parser.error(f"unknown sets {unknown}; known: {list(SETS)}")

    wheel = build_wheel(args.workdir / "dist")
    digest = wheel_digest(wheel)
    print(f"built {wheel.name}", flush=True)
    results = []
    for name in names:
        environment = Environment(SETS[name], args.workdir)
        print(f"[{name}] installing ...", flush=True)
        results.append({**_check(environment, wheel), "wheel": digest, "commit": _commit()})
        print(f"[{name}] {json.dumps(results[-1]['row'])}", flush=True)
    print(_table(results))

    saved = args.workdir / "results.json"
    latest = json.loads(saved.read_text()) if saved.exists() else {}
    latest = latest if isinstance(latest, dict) else {}
    latest.update({result["set"]: result for result in results})
    saved.write_text(json.dumps(latest, indent=2))
    if names == list(SETS):  # the page shows one run of every set, never rows of different runs
        out = REPO / "docs" / "compat" / "results.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_page([latest[name] for name in SETS]))
        print(f"wrote {out.relative_to(REPO)}")
    return 0 if all(result["ok"] for result in results) else 1


def _commit() -> str:
    """The commit the checks ran at (``-dirty`` with uncommitted changes)."""
    found = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or "unknown"


def _check(environment: Environment, wheel: Path) -> dict[str, Any]:
    name = environment.package_set.name
    row = dict.fromkeys(COLUMNS, "-")
    row["set"] = environment.package_set.title
    try:
        wheel_seconds = environment.prepare(wheel)
    except InstallError as error:
        row["wheel install"] = f"failed: {error}"
        return {"set": name, "ok": False, "row": row}
    row["wheel install"] = "reused" if wheel_seconds is None else f"yes, {wheel_seconds:.0f} s"
    found = run_environment(environment)
    if "probe_error" in found:
        row["provider listed"] = f"failed: {found['probe_error']}"
        return {"set": name, "ok": False, "row": row, "found": found}
    versions = found["versions"]
    row.update(
        {
            "Airflow": versions["apache-airflow"],
            "amazon": versions["apache-airflow-providers-amazon"],
            "boto3": versions["boto3"],
            "provider listed": "yes" if found["provider"] else "no",
            "DAGs": f"{len(found['dags'])} of {len(EXPECTED_DAGS)}" + (" (errors)" if found["import_errors"] else ""),
            "unit tier": _suite(found["unit"]),
            "flowcell": _suite(found["flowcell"]),
            "real Airflow": _suite(found["cluster"]),
        }
    )
    ok = (
        found["from_wheel"]
        and found["provider"]
        and found["dags"] == EXPECTED_DAGS
        and not found["import_errors"]
        and all("error" not in found[s] and not found[s]["failed"] and found[s]["passed"] for s in SUITES)
    )
    if not found["from_wheel"]:
        row["wheel install"] += " (but healthomics was imported from elsewhere)"
    return {"set": name, "ok": bool(ok), "row": row, "found": found}


def _suite(result: dict[str, Any]) -> str:
    if "error" in result:
        return str(result["error"])
    text = f"{result['passed']} passed"
    if result["failed"]:
        text += f", {result['failed']} failed"
    if result["skipped"]:
        text += f", {result['skipped']} skipped"
    return text


def _table(results: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(result["row"][column]) for column in COLUMNS) + " |" for result in results]
    return "\n".join(lines)


def _page(results: list[dict[str, Any]]) -> str:
    commits = sorted({result["commit"] for result in results})
    return (
        "# make compat: the last full run\n\n"
        "The runtime wheel installed with pip into a fresh Python 3.11 virtualenv per set, after the "
        "set's own packages (MWAA: the image's required packages under its constraint files, "
        f"`aws/amazon-mwaa-docker-images` at {MWAA_IMAGES_COMMIT[:8]}); then the unit tier, the "
        "flowcell and a three-stage pipeline end to end (`tests/integration/test_flowcell_dag.py`, "
        "`tests/integration/test_pipeline_dag.py`, dag.test() on the local stack) and a real Airflow of the "
        "set: a failed sample and a failed stage cleared and run again, deferred waits killed, ended from the "
        "triggerer and carried over a triggerer restart (`tests/integration/test_flowcell_cluster.py`, "
        "`tests/integration/test_pipeline_cluster.py`, `tests/integration/healthomics/test_real_triggerer.py`). "
        f"Commit {', '.join(commits)}; see [../install.md](../install.md).\n\n" + _table(results) + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())
