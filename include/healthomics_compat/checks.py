"""What `make compat` checks in each environment, each in a process of that environment's Python.

The installed wheel is what runs: the plugins folder is an empty directory (the provider's
metadata alone registers the links), and the first check fails if ``healthomics`` would be
imported from anywhere but the virtualenv's site-packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from healthomics_compat.environments import Environment
from healthomics_compat.sets import REPO

# Versions, where healthomics is imported from, whether the provider is listed, the DAGs.
PROBE = """
import json, sys
from importlib.metadata import version
import healthomics
from airflow.providers_manager import ProvidersManager
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.3
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])  # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES
print(json.dumps({
    "versions": {p: version(p) for p in ("apache-airflow", "apache-airflow-providers-amazon", "boto3")},
    "package": healthomics.__file__,
    "provider": "healthomics-airflow" in ProvidersManager().providers,
    "dags": sorted(bag.dag_ids),
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
}))
"""

# The unit tier; the flowcell end to end on the local stack with dag.test(); and in a real Airflow of
# the set (scheduler, triggerer, dag-processor, api-server as processes), where the triggerer and the
# task state store differ by release: a flowcell whose failed sample is cleared and runs again, and
# deferred waits that end their task, are killed (the run is cancelled) or survive a triggerer restart.
SUITES = {
    "unit": ["-m", "unit", "tests/unit"],
    "flowcell": [
        "-m",
        "integration",
        "tests/integration/test_flowcell_dag.py",
        "tests/integration/test_pipeline_dag.py",
    ],
    "cluster": [
        "-m",
        "cluster",
        "tests/integration/test_flowcell_cluster.py",
        "tests/integration/test_pipeline_cluster.py",
        "tests/integration/healthomics/test_real_triggerer.py",
    ],
}


def run_environment(environment: Environment) -> dict[str, Any]:
    """The probe, then each suite; what each found."""
    with tempfile.TemporaryDirectory(prefix="healthomics-compat-") as scratch:
        env = _environment(environment, Path(scratch))
        probe = subprocess.run(
            [str(environment.python), "-c", PROBE, str(REPO / "dags")],
            env=env,
            cwd=scratch,
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:
            return {"probe_error": probe.stderr.strip().splitlines()[-1:]}
        found: dict[str, Any] = json.loads(probe.stdout.strip().splitlines()[-1])
        found["from_wheel"] = Path(found.pop("package")).is_relative_to(environment.venv)
        for suite, args in SUITES.items():
            found[suite] = _pytest(environment, env, suite, args)
    return found


def _environment(environment: Environment, scratch: Path) -> dict[str, str]:
    plugins = scratch / "plugins"
    plugins.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{environment.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(scratch / "airflow-home"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # The local stack's servers run under the development virtualenv (moto is not a runtime package).
        LOCAL_AWS_PYTHON=sys.executable,
    )
    return env


def _pytest(environment: Environment, env: dict[str, str], suite: str, args: list[str]) -> dict[str, Any]:
    report = environment.root / f"{suite}.xml"
    log = environment.root / f"{suite}.log"
    report.unlink(missing_ok=True)
    command = [str(environment.python), "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}", *args]
    with log.open("w") as out:
        subprocess.run(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False)
    if not report.exists():
        return {"error": f"pytest wrote no report (see {log})"}
    return {**_junit(report), "log": str(log)}


def _junit(report: Path) -> dict[str, int]:
    """Passed, failed (failures and errors) and skipped tests of a JUnit XML report."""
    root = ET.parse(report).getroot()
    result = {"passed": 0, "failed": 0, "skipped": 0}
    for suite in [root] if root.tag == "testsuite" else list(root):
        tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        result["failed"] += failed
        result["skipped"] += skipped
        result["passed"] += tests - failed - skipped
    return result
