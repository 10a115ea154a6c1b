"""``python -m healthomics_bench`` (``make bench``): flowcells of N samples, this project vs the baseline.

For every N and variant: a fresh local stack (moto + the HealthOmics emulator) and a fresh
local Airflow (api-server, scheduler, dag-processor, triggerer; SQLite, LocalExecutor), one
flowcell triggered through the REST API, measured until its notification (see ``measure``).

Everything on the AWS side is scaled by ``--time-scale``: run durations, the published API
quotas (x scale, since callers live in real time) and the poll interval (/ scale). Airflow's
own work is not scaled, so its overhead shows up scale-times larger in emulated time: the
overhead figures are upper bounds.

Variants: ``project`` (``healthomics_flowcell``: StartRunBatch, shared ListRuns polls, tasks
ended from the triggerer), ``events`` (the same, woken by run status events from SQS) and
``baseline`` (one StartRun per sample, one GetRun-polling trigger per run, tasks resumed on
a worker; ``healthomics_bench.baseline``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy

from healthomics_bench import submission
from healthomics_bench.measure import Clock, Sampler, deferral_times, derive, derive_pipeline, fan_out_progress
from healthomics_bench.report import render_chart, render_table
from healthomics_bench.scenario import STAGES, Pipeline, build_flowcell, build_pipeline, stage_manifest
from local_airflow.deployment import LocalAirflow
from local_aws.stack import LocalAWS
from omics_emulator import EmulatorAdmin
from omics_emulator.quotas import DEFAULT_TPS

REPO = Path(__file__).resolve().parents[2]
PROJECT_DAG = REPO / "dags" / "healthomics_flowcell.py"
PIPELINE_DAG = REPO / "dags" / "healthomics_pipeline.py"
BASELINE_DAG = Path(__file__).resolve().parent / "dags" / "healthomics_baseline_flowcell.py"
VARIANTS = {
    "project": ("healthomics_flowcell", PROJECT_DAG),
    "events": ("healthomics_flowcell", PROJECT_DAG),
    "baseline": ("healthomics_baseline_flowcell", BASELINE_DAG),
    # A three-stage pipeline per sample: healthomics_pipeline (each sample moves on by itself), and
    # the same stages run flowcell-wide one after another (healthomics_flowcell once per stage).
    "pipeline": ("healthomics_pipeline", PIPELINE_DAG),
    "stagewise": ("healthomics_flowcell", PROJECT_DAG),
}
PIPELINE_VARIANTS = ("pipeline", "stagewise")
# Not a DAG: how later stages are best submitted, the AWS side alone (healthomics_bench.submission).
SUBMISSION_VARIANT = "submission"
EVENTS_QUEUE = "healthomics-run-events"
# Germline WGS for a sample, a cohort QC after them: emulated seconds.
SAMPLE_PROFILE = {"pending_seconds": 60, "starting_seconds": 300, "running_seconds": 3 * 3600, "jitter": 0.1}
QC_PROFILE = {"pending_seconds": 60, "starting_seconds": 300, "running_seconds": 1800, "jitter": 0.0}
# A pipeline's stage: an hour each, so the three stages take what the one germline run does; +/-40 %
# per run, as samples of one flowcell differ in depth (the spread is what stage-by-stage waits on).
STAGE_PROFILE = {"pending_seconds": 60, "starting_seconds": 300, "running_seconds": 3600, "jitter": 0.4}


def emulator_config(time_scale: float) -> dict[str, Any]:
    return {
        # Real-time quotas that amount to the published ones in emulated time.
        "quotas": {operation: tps * time_scale for operation, tps in DEFAULT_TPS.items()},
        # Batches release runs at the published StartRun rate, in emulated time.
        "batch_submission_tps": DEFAULT_TPS["StartRun"],
        "profiles": {
            "default": SAMPLE_PROFILE,
            "cohort-qc": QC_PROFILE,
            **{
                name: {**STAGE_PROFILE, "outputs": {stage["output"]: f"out/{{runName}}.{stage['output']}"}}
                for name, stage in STAGES.items()
            },
        },
        "check_inputs": False,  # both DAGs are given existing inputs; spare moto N HEADs per run
        "seed": 1,
    }


def run_one(variant: str, samples: int, args: argparse.Namespace) -> dict[str, Any]:
    dag_id, dag_file = VARIANTS[variant]
    work = args.workdir / f"{variant}-{samples}"
    shutil.rmtree(work, ignore_errors=True)
    scale = args.time_scale
    poll_real = args.poll_seconds / scale
    events = variant == "events"
    database = "postgresql" if args.postgres else "sqlite"
    stack = LocalAWS(
        workdir=work / "stack",
        time_scale=scale,
        emulator_config=emulator_config(scale),
        events_queue=EVENTS_QUEUE if events else None,
    )
    with stack:
        flowcell = build_pipeline(stack, samples) if variant in PIPELINE_VARIANTS else build_flowcell(stack, samples)
        dags = work / "dags"
        dags.mkdir(parents=True)
        (dags / dag_file.name).symlink_to(dag_file)
        env = {**stack.env(), "AIRFLOW__HEALTHOMICS__POLL_SECONDS": f"{poll_real:g}"}
        # The account's StartRun quota as the emulator applies it: the published one, in real time.
        env["AIRFLOW__HEALTHOMICS__START_RUN_TPS"] = f"{DEFAULT_TPS['StartRun'] * scale:g}"
        env["AIRFLOW__HEALTHOMICS__PIPELINE_STAGES"] = str(len(STAGES))
        if events:
            queue_url = stack.client("sqs").get_queue_url(QueueName=EVENTS_QUEUE)["QueueUrl"]
            env["AIRFLOW_VAR_HEALTHOMICS_RUN_WAKE_QUEUE_URL"] = queue_url
        with (
            metadata_database(args.postgres, f"bench_{variant}_{samples}") as database_url,
            LocalAirflow(workdir=work / "airflow", dags_folder=dags, env=env, database_url=database_url) as airflow,
        ):
            airflow.unpause(dag_id)
            admin = EmulatorAdmin(stack.omics_url)
            admin.reset_counters()
            wall = time.time()
            clock = Clock(wall=wall, emulated=admin.now(), scale=scale)
            components = {
                name: process.process.pid
                for name, process in airflow.processes.items()
                # The api-server serves the Execution API every task start, XCom and defer goes through.
                if name in ("scheduler", "triggerer", "api-server") and process.process is not None
            }
            sampler = Sampler(airflow.sql_alchemy_conn, dag_id, components)
            sampler.start()
            if isinstance(flowcell, Pipeline):
                result = run_pipeline(variant, flowcell, stack, airflow, sampler, clock, admin, args)
                return {"variant": variant, "database": database, **result}
            triggered_at = time.time()
            run_id = airflow.trigger(dag_id, conf=flowcell.conf(), run_id=f"bench__{variant}__{samples}")
            sampler.run_id = run_id
            try:
                sampler.wait_for_dag_run(timeout=args.timeout)
            except TimeoutError:
                # Say how far it came (e.g. 10,000 samples on 2 cores) rather than nothing.
                sampler.stop()
                progress = fan_out_progress(
                    samples=samples,
                    triggered_at=triggered_at,
                    sampler=sampler,
                    counters=admin.counters(),
                    timeout=args.timeout,
                )
                return {"variant": variant, "database": database, **progress}
            sampler.stop()
            dag_run = airflow.dag_run(dag_id, run_id)
            counters = admin.counters()
            task_instances = airflow.task_instances(dag_id, run_id)
            omics = stack.client("omics")
            runs = [item for page in omics.get_paginator("list_runs").paginate() for item in page["items"]]
    result = derive(
        samples=samples,
        clock=clock,
        triggered_at=triggered_at,
        task_instances=task_instances,
        runs=runs,
        counters=counters,
        sampler=sampler,
        poll_seconds=poll_real,
        start_run_tps=DEFAULT_TPS["StartRun"],
        deferred_at=deferral_times(work / "airflow" / "logs", dag_id, run_id),
    )
    return {"variant": variant, "dag_run_state": dag_run["state"], "database": database, **result}


def run_pipeline(
    variant: str,
    pipeline: Pipeline,
    stack: LocalAWS,
    airflow: LocalAirflow,
    sampler: Sampler,
    clock: Clock,
    admin: EmulatorAdmin,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One pipeline flowcell: one healthomics_pipeline run, or (stagewise) one healthomics_flowcell
    run per stage, each over the whole flowcell and started when the one before has finished."""
    dag_id = VARIANTS[variant][0]
    samples = len(pipeline.samples)
    omics = stack.client("omics")
    triggered_at = time.time()
    run_ids: list[str] = []
    if variant == "pipeline":
        run_ids.append(airflow.trigger(dag_id, conf=pipeline.conf(), run_id=f"bench__pipeline__{samples}"))
        sampler.follow(run_ids[-1])
        sampler.wait_for_dag_run(timeout=args.timeout)
    else:
        earlier: dict[str, dict[str, Any]] = {}
        for stage in STAGES:
            conf = {**pipeline.conf(), "manifest_uri": stage_manifest(stack, pipeline, stage, earlier)}
            run_ids.append(airflow.trigger(dag_id, conf=conf, run_id=f"bench__stagewise__{samples}__{stage}"))
            sampler.follow(run_ids[-1])
            sampler.wait_for_dag_run(timeout=args.timeout)
            named = {r["name"]: r for page in omics.get_paginator("list_runs").paginate() for r in page["items"]}
            earlier = {
                s: dict(omics.get_run(id=named[f"{pipeline.flowcell_id}-{stage}-{s}"]["id"])) for s in pipeline.samples
            }
    sampler.stop()
    task_instances = [ti for run_id in run_ids for ti in airflow.task_instances(dag_id, run_id)]
    last = airflow.task_instances(dag_id, run_ids[-1])
    finished = max(epoch_of(ti["end_date"]) for ti in last if ti["task_id"] == "notify")
    qc_started = next((epoch_of(ti["start_date"]) for ti in last if ti["task_id"] == "qc" and ti["start_date"]), None)
    runs = [item for page in omics.get_paginator("list_runs").paginate() for item in page["items"]]
    flowcell_id = pipeline.flowcell_id
    result = derive_pipeline(
        samples=samples,
        stages=list(STAGES),
        clock=clock,
        triggered_at=triggered_at,
        finished_at=finished,
        qc_started_at=qc_started,
        runs=runs,
        run_name=(lambda s, g: f"{flowcell_id}-{s}-{g}")
        if variant == "pipeline"
        else (lambda s, g: f"{flowcell_id}-{g}-{s}"),
        sample_ids=pipeline.samples,
        task_instances=task_instances,
        counters=admin.counters(),
        sampler=sampler,
        start_run_tps=DEFAULT_TPS["StartRun"],
    )
    states = {airflow.dag_run(dag_id, run_id)["state"] for run_id in run_ids}
    return {"dag_run_state": "success" if states == {"success"} else ",".join(sorted(states)), **result}


def epoch_of(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@contextlib.contextmanager
def metadata_database(server_url: str | None, name: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database on ``server_url`` for one flowcell, dropped afterwards (None: SQLite)."""
    if not server_url:
        yield None
        return
    server = sqlalchemy.engine.make_url(server_url)
    admin = sqlalchemy.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def execute(statement: str) -> None:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(statement))

    execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def compare_submissions(sizes: list[int], args: argparse.Namespace) -> None:
    """Each way of submitting later stages, per size, in a fresh stack: docs/bench/submission.json."""
    results = []
    for samples in sizes:
        for strategy in submission.STRATEGIES:
            print(f"== submission: {strategy}, {samples} samples", flush=True)
            work = args.workdir / f"submission-{strategy}-{samples}"
            shutil.rmtree(work, ignore_errors=True)
            stack = LocalAWS(
                workdir=work / "stack", time_scale=args.time_scale, emulator_config=emulator_config(args.time_scale)
            )
            with stack:
                results.append(submission.measure(strategy, samples, stack, args.time_scale, args.poll_seconds))
            print(submission.render_table(results), flush=True)
            (args.out / "submission.json").write_text(
                json.dumps(
                    {
                        "settings": {"time_scale": args.time_scale, "poll_seconds": args.poll_seconds},
                        "results": results,
                    },
                    indent=2,
                )
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthomics_bench", description=__doc__)
    parser.add_argument("--sizes", default="96,1000,384", help="flowcell sizes (comma-separated)")
    parser.add_argument("--variants", default="project,events,baseline", help=f"of {sorted(VARIANTS)}")
    parser.add_argument("--time-scale", type=float, default=120.0, help="emulated seconds per real second")
    parser.add_argument("--poll-seconds", type=float, default=300.0, help="poll interval, emulated seconds")
    parser.add_argument("--timeout", type=float, default=3600.0, help="real seconds one flowcell may take")
    parser.add_argument("--workdir", type=Path, default=REPO / ".local" / "bench")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench", help="results.json and chart.png")
    parser.add_argument("--keep", action="store_true", help="keep the other sizes and variants already in results.json")
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="metadata database on this PostgreSQL server (a fresh database per flowcell, e.g. "
        "postgresql+psycopg2://postgres@127.0.0.1:5432) instead of SQLite",
    )
    args = parser.parse_args(argv)
    # SIGTERM stops the local stack and Airflow like Ctrl-C does (their `with` blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(n) for n in args.sizes.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = set(variants) - set(VARIANTS) - {SUBMISSION_VARIANT}
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if SUBMISSION_VARIANT in variants:
        variants.remove(SUBMISSION_VARIANT)
        compare_submissions(sizes, args)
        if not variants:  # results.json and the chart are the DAG variants'
            return 0
    results: list[dict[str, Any]] = []
    if args.keep and (args.out / "results.json").exists():
        measured = {(v, n) for v in variants for n in sizes}
        earlier = json.loads((args.out / "results.json").read_text())["results"]
        results = [r for r in earlier if (r["variant"], r["samples"]) not in measured]
    machine = {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    started = time.monotonic()
    for samples in sizes:
        for variant in variants:
            print(f"== {variant}, {samples} samples", flush=True)
            try:
                results.append(run_one(variant, samples, args))
            except Exception as err:  # noqa: BLE001 - one size failing must not lose the others' numbers
                print(f"   failed: {err!r}", flush=True)
                results.append({"variant": variant, "samples": samples, "error": repr(err)})
            results.sort(key=lambda r: (r["samples"], r["variant"]))
            (args.out / "results.json").write_text(
                json.dumps(
                    {"machine": machine, "settings": vars(args) | {"workdir": None, "out": None}, "results": results},
                    indent=2,
                    default=str,
                )
            )
            print(render_table(results), flush=True)
    render_chart(results, args.out / "chart.png")
    print(
        f"\nresults: {args.out / 'results.json'}, chart: {args.out / 'chart.png'} ({time.monotonic() - started:.0f}s)"
    )
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
