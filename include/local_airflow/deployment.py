"""LocalAirflow: Airflow's components as local processes, and the REST calls the UI makes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.waiting import wait_until
from local_aws.processes import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]


COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


TERMINAL_DAG_RUN_STATES = frozenset({"success", "failed"})


class ApiError(RuntimeError):
    """The REST API refused a request; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def worker_hostname() -> str:
    """``[core] hostname_callable`` of local Celery workers: an address of their own on loopback.

    Workers on one machine would all report the same host name; ``127.0.0.2``, ``127.0.0.3``, ...
    tell them apart in the task instances and still reach each worker's log server.
    """
    return os.environ.get("LOCAL_AIRFLOW_HOSTNAME") or socket.getfqdn()


@dataclass
class LocalAirflow:
    """
    Start and drive a local Airflow.

    :param workdir: AIRFLOW_HOME (logs, SQLite DB, component logs).
    :param dags_folder: the DAG folder the dag-processor scans.
    :param env: extra environment for every component (connections, AWS endpoints, ...).
    :param database_url: SQLAlchemy URL; default SQLite in ``workdir``.
    :param executor: ``LocalExecutor`` (default) or ``CeleryExecutor``.
    :param celery_workers: Celery workers to start (``worker-1``, ...), with ``CeleryExecutor``.
    :param broker_url: the Celery broker (e.g. ``redis://127.0.0.1:6379/5``).
    :param users: user name -> password, all admins: the UI asks for a login and the REST
        helpers send a token of the first user. Default: no login, every caller is an admin.
    """

    workdir: Path
    dags_folder: Path
    env: dict[str, str] = field(default_factory=dict)
    database_url: str | None = None
    executor: str = "LocalExecutor"
    celery_workers: int = 0
    broker_url: str | None = None
    users: dict[str, str] | None = None
    port: int = 0
    processes: dict[str, ServerProcess] = field(default_factory=dict)
    # Log server ports: each component that serves its task logs gets its own, so two local
    # Airflows (or two workers) on one machine do not collide.
    log_ports: dict[str, int] = field(default_factory=dict)
    # The REST helpers' JWT (with ``users``), fetched on first use and again when it is refused.
    _token: str | None = field(default=None, repr=False)

    @property
    def components(self) -> tuple[str, ...]:
        workers = tuple(f"worker-{i}" for i in range(1, self.celery_workers + 1))
        return (*COMPONENTS, *workers)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def passwords_file(self) -> Path:
        """The SimpleAuthManager's passwords (JSON: user name -> password), with ``users``."""
        return self.workdir / "simple_auth_manager_passwords.json"

    def auth_environment(self) -> dict[str, str]:
        """The SimpleAuthManager settings: no login (all admins), or a login for ``users``."""
        if not self.users:
            # Local use only: every caller is an admin, no login.
            return {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
        return {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            # "name:role" pairs; the passwords come from the file (written by start()).
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:admin" for name in self.users),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
        }

    @property
    def sql_alchemy_conn(self) -> str:
        """The metadata database: ``database_url``, or SQLite in ``workdir``."""
        # SQLite: wait for a lock (up to 60 s) instead of failing at once; every component
        # writes, and a dag-processor that meets "database is locked" exits.
        return self.database_url or f"sqlite:///{self.workdir}/airflow.db?timeout=60"

    def environment(self) -> dict[str, str]:
        """Everything the components need; also what a CLI call against this Airflow needs."""
        return {
            **os.environ,
            **self.env,
            "AIRFLOW_HOME": str(self.workdir),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # As docker-compose.yaml: a run batch takes up to 100,000 samples (Airflow's default: 1,024).
            "AIRFLOW__CORE__MAX_MAP_LENGTH": "100000",
            # Load plugins at start, so that the processes every task forks from already hold the
            # provider layer (see plugins/healthomics_plugin.py).
            "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
            # The api-server answers every running task's Execution API calls from one pool; 32
            # tasks at once (LocalExecutor's parallelism) emptied the default 5 + 10 connections
            # and calls timed out after 30 s. SQLite connections cost nothing; a PostgreSQL
            # server's connections are shared by every component, so it keeps the default.
            **(
                {"AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "16", "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "32"}
                if self.database_url is None
                else {}
            ),
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            **self.auth_environment(),
            "AIRFLOW__API_AUTH__JWT_SECRET": "local-airflow-only-not-a-secret-0123456789",
            # Pick up new DAG files within seconds, not minutes.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "3",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports.setdefault("worker", free_port())),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports.setdefault("triggerer", free_port())),
            **(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.broker_url or "",
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.database_url}",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
                }
                if self.executor == "CeleryExecutor"
                else {}
            ),
        }

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> LocalAirflow:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        if self.users:
            # Written before the api-server starts: it only generates passwords for users missing here.
            self.passwords_file.write_text(json.dumps(self.users) + "\n")
            self.passwords_file.chmod(0o600)
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-2000:]}")
        try:
            for component in self.components:
                self.start_component(component)
        except Exception:
            self.stop()
            raise
        return self

    def start_component(self, component: str) -> None:
        env = self.environment()
        command = [sys.executable, "-m", "airflow", component]
        if component.startswith("worker-"):
            # A Celery worker, named so task instances show which one ran them.
            command = [sys.executable, "-m", "airflow", "celery", "worker", "--celery-hostname", f"{component}@%h"]
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.log_ports.setdefault(component, free_port()))
            env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "local_airflow.deployment.worker_hostname"
            env["LOCAL_AIRFLOW_HOSTNAME"] = f"127.0.0.{int(component.split('-')[1]) + 1}"
        process = ServerProcess(
            name=component,
            command=command,
            port=self.port,
            log_path=self.workdir / f"{component}.log",
            ready_path="/api/v2/version",
        )
        # Only the api-server listens; the others are ready once it answers (it starts first).
        process.start(env, detach=False, timeout=120)
        self.processes[component] = process

    def kill_component(self, component: str) -> None:
        """SIGKILL a component and its children: a machine lost, no chance to clean up."""
        process = self.processes.pop(component, None)
        if process is not None and process.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.process.pid, signal.SIGKILL)
            process.process.wait(30)

    def stop_component(self, component: str, timeout: float = 30.0) -> None:
        process = self.processes.pop(component, None)
        if process is not None:
            process.stop(timeout)

    def restart_component(self, component: str) -> None:
        self.stop_component(component)
        self.start_component(component)

    def stop(self) -> None:
        for component in reversed(self.components):
            self.stop_component(component)

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- REST API (what the UI uses) ---------------------------------------------

    def token(self, refresh: bool = False) -> str:
        """A JWT of the first of ``users`` (what the login page gets), cached until refused."""
        if not self.users:
            raise RuntimeError("no users: every caller is an admin, no token needed")
        if self._token is None or refresh:
            username, password = next(iter(self.users.items()))
            request = urllib.request.Request(
                f"{self.url}/auth/token",
                data=json.dumps({"username": username, "password": password}).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    self._token = str(json.loads(response.read())["access_token"])
            except urllib.error.HTTPError as err:
                raise ApiError(f"login as {username}: {err.code} {err.read().decode()[:2000]}", err.code) from err
        return self._token

    def _request(self, method: str, path: str, body: Any) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.users:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(
            f"{self.url}/api/v2/{path.lstrip('/')}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers=headers,
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        # A read that meets a busy database (SQLite) is simply asked again.
        attempts = 3 if method == "GET" else 1
        attempt, logged_in_again = 1, False
        while True:
            try:
                return self._request(method, path, body)
            except urllib.error.HTTPError as err:
                if err.code == 401 and self.users and not logged_in_again:
                    # The token expired: log in again, once.
                    self.token(refresh=True)
                    logged_in_again = True
                    continue
                if err.code >= 500 and attempt < attempts:
                    attempt += 1
                    time.sleep(2)
                    continue
                raise ApiError(f"{method} {path}: {err.code} {err.read().decode()[:2000]}", err.code) from err

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> None:
        """Until the dag-processor has parsed the DAG (and it has no import error)."""

        def parsed() -> bool:
            errors = self.api("GET", "importErrors")["import_errors"]
            if errors:
                raise RuntimeError("DAG import errors: " + "; ".join(e["stack_trace"][-500:] for e in errors))
            try:
                self.api("GET", f"dags/{dag_id}")
            except RuntimeError:
                return False
            return True

        wait_until(parsed, timeout=timeout, interval=1, what=f"DAG {dag_id} not parsed")

    def unpause(self, dag_id: str) -> None:
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.wait_for_dag(dag_id)
        self.api("PATCH", f"dags/{dag_id}", {"is_paused": True})

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of the DAG (oldest first)."""
        runs: list[dict[str, Any]] = []
        while True:
            page = self.api("GET", f"dags/{dag_id}/dagRuns?limit=100&offset={len(runs)}&order_by=run_after")
            runs += page["dag_runs"]
            if not page["dag_runs"] or len(runs) >= page["total_entries"]:
                return runs

    def set_variable(self, key: str, value: str, description: str | None = None) -> None:
        """What Admin > Variables in the UI does: create the Variable, or replace its value."""
        body = {"key": key, "value": value, "description": description}
        try:
            self.api("POST", "variables", body)
        except ApiError as err:
            if err.status != 409:
                raise
            self.api("PATCH", f"variables/{key}", body)

    def delete_dag_run(self, dag_id: str, run_id: str) -> None:
        self.api("DELETE", f"dags/{dag_id}/dagRuns/{run_id}")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return str(self.api("POST", f"dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(found)}")
            found.extend(page["task_instances"])
            if len(found) >= page["total_entries"] or not page["task_instances"]:
                return found

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], map_index: int = -1, timeout: float = 120.0
    ) -> dict[str, Any]:
        last: list[dict[str, Any]] = []

        def in_state() -> dict[str, Any] | None:
            for ti in self.task_instances(dag_id, run_id):
                if ti["task_id"] == task_id and ti["map_index"] == map_index:
                    last[:] = [ti]
                    return ti if ti["state"] in states else None
            return None

        return wait_until(in_state, timeout=timeout, what=lambda: f"{task_id}[{map_index}] not in {states} ({last})")

    def wait_for_dag_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict[str, Any]:

        def finished() -> dict[str, Any] | None:
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in TERMINAL_DAG_RUN_STATES else None

        return wait_until(finished, timeout=timeout, interval=1, what=f"DAG run {dag_id}/{run_id} did not finish")

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, map_index: int = -1) -> None:
        """What "Mark failed/success" in the UI does."""
        suffix = f"/{map_index}" if map_index >= 0 else ""
        self.api("PATCH", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}{suffix}", {"new_state": state})

    def clear(
        self, dag_id: str, run_id: str, task_ids: list[Any], include_downstream: bool = True
    ) -> list[dict[str, Any]]:
        """What "Clear" in the UI does. ``task_ids`` items: a task id, or ``[task_id, map_index]``."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "include_downstream": include_downstream,
            "only_failed": False,
            "reset_dag_runs": True,
        }
        return list(self.api("POST", f"dags/{dag_id}/clearTaskInstances", body)["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        entry = self.api(
            "GET",
            f"dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}?map_index={map_index}"
            "&deserialize=true",
        )
        return entry["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        path = self.workdir / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            path = path / f"map_index={map_index}"
        log = path / f"attempt={try_number}.log"
        return log.read_text() if log.exists() else ""
