"""``python -m healthomics_chaos`` (``make chaos``): the multi-node deployment under seeded faults.

Airflow as the multi-node test runs it (api-server, scheduler, dag-processor, triggerer, two
Celery workers; PostgreSQL and Redis on 127.0.0.1), the local stack behind it (moto reached
through a proxy that can take it off the network, the HealthOmics emulator), and a callback
receiver. While a flowcell of ``--samples`` samples runs, ``--manifests`` manifests land in S3
(every fourth announced twice) and every run's status events flow through the events DAG,
the faults of :func:`faults_for` strike on a schedule drawn from ``--seed``. Then the results
are read from the systems of record (:mod:`healthomics_chaos.audit`), printed as a table and
written to ``--results``. Bounded by ``--limit`` seconds; every process it starts stops with it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import platform
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy

from healthomics_chaos import audit
from healthomics_chaos.faults import Fault, Progress, Schedule, spread
from healthomics_chaos.proxy import TcpProxy
from healthomics_chaos.workload import ARCHIVE, EVENTS_QUEUE, LANDING, MANIFEST_PREFIX, ROLE_ARN, Workload
from local_airflow.deployment import LocalAirflow
from local_airflow.services import POSTGRES, REDIS, fresh_postgres_database, fresh_redis_broker, reachable
from local_aws.receiver import Receiver
from local_aws.stack import LocalAWS
from omics_emulator import EmulatorAdmin
from omics_emulator.quotas import DEFAULT_TPS

log = logging.getLogger("healthomics_chaos")
REPO = Path(__file__).resolve().parents[2]
REDIS_DB = 12
DAGS = ("healthomics_flowcell", "healthomics_manifest_events", "healthomics_run_events")
TIME_SCALE = 60.0  # a sample's 4-hour run takes 4 minutes
# Ten times the published quotas (StartRun 1 TPS, the older published default): the storms divide them by ten.
QUOTAS = {operation: tps * 10 for operation, tps in DEFAULT_TPS.items()}


@dataclass
class ChaosConfig:
    seed: int = 7
    samples: int = 200
    manifests: int = 20
    samples_per_manifest: int = 3
    sample_run_hours: float = 4.0  # emulated; TIME_SCALE makes it minutes
    limit: float = 1200.0  # seconds, everything included
    landing_gap: float = 15.0  # seconds between landed manifests
    fault_start: float = 45.0  # seconds after the flowcell was triggered
    fault_gap: float = 75.0
    moto_outage: float = 30.0
    receiver_outage: float = 60.0
    storm: float = 60.0
    error_rate: float = 0.05
    kills: tuple[str, ...] = ("worker-1", "triggerer", "scheduler", "api-server")
    workdir: Path = REPO / ".local" / "chaos"


def airflow_env(stack: LocalAWS, proxy: TcpProxy, receiver: Receiver, workload: Workload) -> dict[str, str]:
    """The deployment's settings: AWS through the proxy (omics straight to the emulator), the Variables."""
    env = stack.env()
    connection = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    connection["extra"]["endpoint_url"] = proxy.url
    env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(connection)
    return {
        **env,
        "AIRFLOW_CONN_HEALTHOMICS_CALLBACK": receiver.url,
        "AIRFLOW_VAR_HEALTHOMICS_RUN_ROLE_ARN": ROLE_ARN,
        "AIRFLOW__HEALTHOMICS__MANIFEST_PREFIX": f"s3://{LANDING}/{MANIFEST_PREFIX}",
        "AIRFLOW__HEALTHOMICS__MANIFEST_QUEUE_URL": workload.queues["manifests"],
        "AIRFLOW__HEALTHOMICS__RUN_EVENTS_QUEUE_URL": workload.queues["events"],
        "AIRFLOW__HEALTHOMICS__RUN_EVENTS_ARCHIVE_URI": f"s3://{ARCHIVE}/{audit.ARCHIVE_PREFIX.rstrip('/')}",
        "AIRFLOW_VAR_HEALTHOMICS_SNS_TOPIC_ARN": workload.topic_arn,
        "AIRFLOW__HEALTHOMICS__POLL_SECONDS": "5",
        "AIRFLOW__HEALTHOMICS__MAX_ACTIVE_FLOWCELLS": "32",
        # Short visibility: messages still being handled come back (SQS redeliveries, on purpose).
        "AIRFLOW__HEALTHOMICS__MANIFEST_VISIBILITY_SECONDS": "120",
        "AIRFLOW__HEALTHOMICS__RUN_EVENTS_VISIBILITY_SECONDS": "120",
        # As the multi-node test: notice a dead worker's tasks within a minute.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
    }


def faults_for(
    config: ChaosConfig, airflow: LocalAirflow, emulator: EmulatorAdmin, proxy: TcpProxy, receiver: Receiver
) -> list[Fault]:
    """The scheduled faults: a storm, kills of each component, moto and the receiver off the network."""

    def kill(component: str) -> Fault:
        return Fault(
            f"SIGKILL {component}",
            0,
            5.0,
            inject=lambda: airflow.kill_component(component),
            heal=lambda: airflow.start_component(component),
        )

    def storm() -> None:
        emulator.configure(quotas={operation: tps / 10 for operation, tps in QUOTAS.items()})

    def calm() -> None:
        emulator.configure(quotas=QUOTAS)

    faults = [
        Fault(
            "throttling storm (quotas / 10)",
            0,
            config.storm,
            inject=storm,
            heal=calm,
        ),
        *(kill(component) for component in config.kills),
        Fault("moto unreachable", 0, config.moto_outage, inject=proxy.cut, heal=proxy.restore),
        Fault("callback receiver down", 0, config.receiver_outage, inject=receiver.close, heal=receiver.start),
    ]
    times = spread([f.name for f in faults], config.seed, config.fault_start, config.fault_gap)
    for fault in faults:
        fault.at = times[fault.name]
    return faults


def queues_empty(sqs: Any, queue_urls: list[str]) -> bool:
    for url in queue_urls:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        if int(attributes["ApproximateNumberOfMessages"]) or int(attributes["ApproximateNumberOfMessagesNotVisible"]):
            return False
    return True


def flowcell_runs_done(engine: sqlalchemy.Engine, run_ids: list[str]) -> bool:
    with engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text("SELECT run_id, state FROM dag_run WHERE dag_id = 'healthomics_flowcell'")
        ).all()
    states = dict((str(r[0]), str(r[1])) for r in rows)
    return all(states.get(run_id) in ("success", "failed") for run_id in run_ids)


def run(config: ChaosConfig) -> dict[str, Any]:
    """One chaos run; its results (see :func:`render`)."""
    missing = [name for name, address in (("PostgreSQL", POSTGRES), ("Redis", REDIS)) if not reachable(address)]
    if missing:
        raise RuntimeError(f"the chaos run needs {' and '.join(missing)} on 127.0.0.1 (as the multi-node test)")
    began = time.monotonic()
    shutil.rmtree(config.workdir, ignore_errors=True)
    config.workdir.mkdir(parents=True)
    emulator_config = {
        "quotas": QUOTAS,
        "batch_submission_tps": 1.0,
        "profiles": {
            "default": {
                "pending_seconds": 60,
                "starting_seconds": 300,
                "running_seconds": config.sample_run_hours * 3600,
                "jitter": 0.1,
            },
            "cohort-qc": {"pending_seconds": 60, "starting_seconds": 60, "running_seconds": 600, "jitter": 0.0},
        },
        "check_inputs": False,
        "seed": config.seed,
    }
    with contextlib.ExitStack() as cleanup:
        stack = cleanup.enter_context(
            LocalAWS(
                workdir=config.workdir / "stack",
                time_scale=TIME_SCALE,
                emulator_config=emulator_config,
                events_queue=EVENTS_QUEUE,
            )
        )
        emulator = EmulatorAdmin(stack.omics_url)
        assert stack.moto is not None
        proxy = TcpProxy(stack.moto.port).start()
        cleanup.callback(proxy.close)
        receiver = Receiver()
        cleanup.callback(receiver.close)
        workload = Workload(stack, config.samples, config.manifests, config.samples_per_manifest)
        workload.prepare()
        database = cleanup.enter_context(fresh_postgres_database("airflow_chaos"))
        broker = cleanup.enter_context(fresh_redis_broker(REDIS_DB))
        dags = config.workdir / "dags"
        dags.mkdir()
        for name in DAGS:
            shutil.copy(REPO / "dags" / f"{name}.py", dags)
        airflow = LocalAirflow(
            workdir=config.workdir / "airflow",
            dags_folder=dags,
            env=airflow_env(stack, proxy, receiver, workload),
            database_url=database,
            executor="CeleryExecutor",
            celery_workers=2,
            broker_url=broker,
        )
        cleanup.enter_context(airflow)
        for dag_id in DAGS:
            airflow.unpause(dag_id)
        engine = sqlalchemy.create_engine(database, pool_pre_ping=True)
        cleanup.callback(engine.dispose)
        progress = Progress(database).start()
        cleanup.callback(progress.stop)

        # The workload starts: the large flowcell through the REST API, the stream of manifests, the faults.
        log.info("setup took %.0f s; starting the workload", time.monotonic() - began)
        rule = emulator.add_fault(action="error", code="InternalServerException", rate=config.error_rate)
        big_run = airflow.trigger("healthomics_flowcell", conf=workload.big_flowcell_conf())
        started = time.monotonic()
        schedule = Schedule(faults_for(config, airflow, emulator, proxy, receiver), started).start()
        cleanup.callback(schedule.stop)

        def land() -> None:
            for index in range(1, config.manifests + 1):
                time.sleep(config.landing_gap)
                workload.land(index, duplicate=index % 4 == 1)

        landing = threading.Thread(target=land, name="chaos-landing", daemon=True)
        landing.start()

        sqs = stack.client("sqs")
        deadline = began + config.limit - 90  # leave time to audit and stop
        finished, quiet = False, 0
        while time.monotonic() < deadline:
            time.sleep(10)
            if landing.is_alive() or not schedule.done():
                continue
            run_ids = [big_run, *(landed.run_id for landed in workload.landed)]
            ready = flowcell_runs_done(engine, run_ids) and queues_empty(
                sqs, [workload.queues["manifests"], workload.queues["events"]]
            )
            quiet = quiet + 1 if ready else 0
            if quiet >= 2:  # quiet twice in a row: nothing left in flight
                finished = True
                break
        elapsed = time.monotonic() - started
        log.info("workload %s after %.0f s; auditing", "done" if finished else "cut off", elapsed)
        schedule.stop()
        schedule.measure(progress)
        injected = next((f["applied"] for f in emulator.faults() if f["id"] == rule["id"]), 0)
        emulator.clear_faults()
        s3, omics = stack.client("s3"), stack.client("omics")
        expected = workload.expected_samples()
        results = {
            "date": dt.date.today().isoformat(),
            "machine": machine(),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "finished": finished,
            "workload_seconds": round(elapsed, 1),
            "runs_per_sample": audit.runs_per_sample(omics, expected),
            "samples_lost": audit.samples_lost(s3, expected),
            "tasks": audit.task_failures(engine),
            "dag_runs_per_manifest": audit.runs_per_manifest(engine, workload),
            "notifications": audit.notifications(sqs, workload.queues["notifications"], list(expected)),
            "events": audit.events(s3, emulator, receiver),
            "redeliveries_seen_as_duplicates": audit.redeliveries(engine),
            "intake_dead_letters": audit.intake_dead_letters(s3),
            "faults": [
                {"fault": f"HealthOmics 5xx on {config.error_rate:.0%} of calls", "injected": injected},
                {"fault": "duplicate S3 event notifications", "injected": sum(w.duplicated for w in workload.landed)},
                *(fault.as_dict() for fault in schedule.faults),
            ],
        }
    results["total_seconds"] = round(time.monotonic() - began, 1)
    return results


def machine() -> str:
    memory = psutil.virtual_memory().total / 2**30
    return f"{platform.machine()}, {psutil.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}"


def render(results: dict[str, Any]) -> str:
    """The results table."""
    runs, lost, tasks = results["runs_per_sample"], results["samples_lost"], results["tasks"]
    manifests, notes, events = results["dag_runs_per_manifest"], results["notifications"], results["events"]
    callbacks = events["callbacks"]
    ones = runs["distribution"].get(1, 0)
    rows = [
        (
            "HealthOmics runs per sample",
            "exactly 1",
            f"1 for {ones} of {runs['samples']} samples; others {runs['not_exactly_one'] or 'none'}",
        ),
        ("samples lost", "0", f"{lost['lost']}"),
        (
            "tasks failed for good",
            "0",
            f"{tasks['failed']} (tries beyond the first: {sum(tasks['retried_by_dag'].values())})",
        ),
        (
            "DAG runs per manifest version",
            "exactly 1",
            f"1 for {manifests['distribution'].get(1, 0)} of {manifests['manifest_versions']}"
            f" ({manifests['duplicated_notifications_sent']} announced twice)",
        ),
        ("notifications per flowcell", "exactly 1", f"1 for {notes['distribution'].get(1, 0)} of {notes['flowcells']}"),
        (
            "events emitted / archived",
            "equal, none twice",
            f"{events['emitted']} / {events['archived']}"
            f" ({events['missing_count']} missing, {len(events['archived_twice'])} twice)",
        ),
        (
            "callbacks delivered or dead-lettered",
            "all",
            f"{callbacks['delivered']} + {callbacks['dead_lettered']} of"
            f" {callbacks['run_status_events']} ({callbacks['unaccounted']} unaccounted)",
        ),
        ("redeliveries found already archived", "-", str(results["redeliveries_seen_as_duplicates"])),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [
        f"Chaos run {results['date']} ({results['machine']}), seed {results['config']['seed']}: "
        f"{results['config']['samples']} samples + {results['config']['manifests']} manifests x "
        f"{results['config']['samples_per_manifest']}, workload {results['workload_seconds']:.0f} s"
        + ("" if results["finished"] else " (CUT OFF at the time limit)"),
        "",
        f"{'figure':<{width}}  {'target':<17}  measured",
        *(f"{name:<{width}}  {target:<17}  {measured}" for name, target, measured in rows),
        "",
        f"{'fault':<32}  {'at s':>6}  {'lasted s':>8}  {'recovered after s':>17}",
    ]
    for fault in results["faults"]:
        if "injected" in fault:
            lines.append(f"{fault['fault']:<32}  {'-':>6}  {'whole run':>8}  {'-':>17}  ({fault['injected']} injected)")
            continue
        cells = [fault.get(k) for k in ("at_s", "lasted_s", "recovered_after_s")]
        shown = [f"{c:.0f}" if isinstance(c, int | float) else "-" for c in cells]
        lines.append(
            f"{fault['fault']:<32}  {shown[0]:>6}  {shown[1]:>8}  {shown[2]:>17}"
            + (f"  ERROR {fault['error']}" if fault.get("error") else "")
        )
    if tasks["failed_tasks"]:
        lines += ["", "Failed tasks:", *(f"  {t}" for t in tasks["failed_tasks"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthomics_chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=ChaosConfig.seed)
    parser.add_argument("--samples", type=int, default=ChaosConfig.samples)
    parser.add_argument("--manifests", type=int, default=ChaosConfig.manifests)
    parser.add_argument("--limit", type=float, default=ChaosConfig.limit, help="seconds, everything included")
    parser.add_argument("--workdir", type=Path, default=ChaosConfig.workdir)
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "chaos" / "results.json")
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, Ctrl-C's cousin) still stops every process and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = ChaosConfig(
        seed=args.seed, samples=args.samples, manifests=args.manifests, limit=args.limit, workdir=args.workdir
    )
    results = run(config)
    table = render(results)
    print(table)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    args.results.with_suffix(".txt").write_text(table)
    return 0 if passed(results) else 1


def passed(results: dict[str, Any]) -> bool:
    """Every figure at its target."""
    events = results["events"]
    return (
        results["finished"]
        and not results["runs_per_sample"]["not_exactly_one"]
        and not results["runs_per_sample"]["qc_runs_not_exactly_one"]
        and results["samples_lost"]["lost"] == 0
        and results["tasks"]["failed"] == 0
        and not results["dag_runs_per_manifest"]["not_exactly_one"]
        and not results["notifications"]["not_exactly_one"]
        and events["missing_count"] == 0
        and not events["archived_twice"]
        and events["callbacks"]["unaccounted"] == 0
    )


if __name__ == "__main__":
    raise SystemExit(main())
