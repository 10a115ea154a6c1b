"""After a chaos run: what was started, lost, failed, duplicated, archived and called back.

Every figure is read from the system of record itself, never from what the run meant to do:
HealthOmics runs from the emulator's ListRuns, sample outcomes from each flowcell's
``report.json`` in S3, task instances and DAG runs from the metadata database, notifications
from the SQS queue subscribed to the SNS topic, archived events and callback markers from the
event archive, callbacks from the receiver.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import sqlalchemy

from healthomics_chaos.workload import ARCHIVE, LAB, Workload
from local_aws.receiver import Receiver
from omics_emulator import EmulatorAdmin

ARCHIVE_PREFIX = "omics-events/"
ARCHIVED_EVENT = re.compile(r"event_\d{8}_\d{6}_(?P<id>[A-Za-z0-9-]+)\.json$")
FLOWCELL_DAG = "healthomics_flowcell"


def _objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def _document(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def runs_per_sample(omics: Any, expected: dict[str, list[str]]) -> dict[str, Any]:
    runs = [item for page in omics.get_paginator("list_runs").paginate() for item in page["items"]]
    by_name = Counter(run["name"] for run in runs)
    counts = {
        (flowcell, sample): by_name.get(f"{flowcell}-{sample}", 0)
        for flowcell, samples in expected.items()
        for sample in samples
    }
    failed = [run["name"] for run in runs if run["status"] in ("FAILED", "CANCELLED", "DELETED")]
    qc = {flowcell: by_name.get(f"{flowcell}-qc", 0) for flowcell in expected}
    return {
        "samples": len(counts),
        "distribution": dict(sorted(Counter(counts.values()).items())),
        "not_exactly_one": {f"{f}/{s}": n for (f, s), n in counts.items() if n != 1},
        "failed_runs": failed,
        "qc_runs_not_exactly_one": {f: n for f, n in qc.items() if n != 1},
        "total_runs": len(runs),
    }


def samples_lost(s3: Any, expected: dict[str, list[str]]) -> dict[str, Any]:
    """Samples whose flowcell report does not show them COMPLETED (or that have no report at all)."""
    lost: dict[str, list[str]] = {}
    reports: dict[str, int] = {}
    for flowcell, samples in expected.items():
        keys = [k for k in _objects(s3, LAB, f"outputs/{flowcell}/_reports/") if k.endswith("/report.json")]
        reports[flowcell] = len(keys)
        completed: set[str] = set()
        for key in keys:
            report = _document(s3, LAB, key)
            completed |= {s["sample_id"] for s in report["samples"] if s["status"] == "COMPLETED"}
        missing = [s for s in samples if s not in completed]
        if missing:
            lost[flowcell] = missing
    return {
        "lost": sum(len(v) for v in lost.values()),
        "by_flowcell": {f: v[:10] for f, v in lost.items()},
        "flowcells_without_report": [f for f, n in reports.items() if n == 0],
    }


def task_failures(engine: sqlalchemy.Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        failed = connection.execute(
            sqlalchemy.text(
                "SELECT dag_id, run_id, task_id, map_index, state, try_number FROM task_instance "
                "WHERE state IN ('failed', 'upstream_failed') ORDER BY dag_id, run_id, task_id, map_index"
            )
        ).all()
        retried = connection.execute(
            sqlalchemy.text("SELECT dag_id, count(*) FROM task_instance WHERE try_number > 1 GROUP BY dag_id")
        ).all()
        runs = connection.execute(
            sqlalchemy.text("SELECT dag_id, state, count(*) FROM dag_run GROUP BY dag_id, state ORDER BY dag_id")
        ).all()
    return {
        "failed": len(failed),
        "failed_tasks": [f"{r[0]}/{r[1]}/{r[2]}[{r[3]}] {r[4]} after {r[5]} tries" for r in failed[:30]],
        "retried_by_dag": {r[0]: int(r[1]) for r in retried},
        "dag_runs": {f"{r[0]} {r[1]}": int(r[2]) for r in runs},
    }


def runs_per_manifest(engine: sqlalchemy.Engine, workload: Workload) -> dict[str, Any]:
    with engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text("SELECT run_id, conf FROM dag_run WHERE dag_id = :dag"), {"dag": FLOWCELL_DAG}
        ).all()
    by_manifest: Counter[str] = Counter()
    for run_id, conf in rows:
        document = json.loads(conf) if isinstance(conf, str | bytes) else (conf or {})
        by_manifest[str(document.get("manifest_uri"))] += 1
        by_manifest[f"run:{run_id}"] += 1
    counts = {
        landed.run_id: (by_manifest[f"run:{landed.run_id}"], by_manifest[f"s3://chaos-landing/{landed.key}"])
        for landed in workload.landed
    }
    return {
        "manifest_versions": len(counts),
        "distribution": dict(sorted(Counter(n for n, _ in counts.values()).items())),
        "not_exactly_one": {run: n for run, (n, any_run) in counts.items() if n != 1 or any_run != 1},
        "duplicated_notifications_sent": sum(landed.duplicated for landed in workload.landed),
    }


def notifications(sqs: Any, queue_url: str, flowcells: list[str]) -> dict[str, Any]:
    """SNS messages per flowcell, read from the queue subscribed to the topic (and taken off it)."""
    counts: Counter[str] = Counter()
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not batch:
            break
        for message in batch:
            envelope = json.loads(message["Body"])
            counts[envelope.get("MessageAttributes", {}).get("flowcell", {}).get("Value", "?")] += 1
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    per_flowcell = {flowcell: counts.get(flowcell, 0) for flowcell in flowcells}
    return {
        "flowcells": len(per_flowcell),
        "distribution": dict(sorted(Counter(per_flowcell.values()).items())),
        "not_exactly_one": {f: n for f, n in per_flowcell.items() if n != 1},
    }


def events(s3: Any, emulator: EmulatorAdmin, receiver: Receiver) -> dict[str, Any]:
    emitted = emulator.events()
    keys = _objects(s3, ARCHIVE, ARCHIVE_PREFIX)
    archived: Counter[str] = Counter()
    run_events: list[str] = []
    for key in keys:
        found = ARCHIVED_EVENT.search(key)
        if found and "/" not in key.removeprefix(ARCHIVE_PREFIX):
            archived[found["id"]] += 1
            if _document(s3, ARCHIVE, key).get("eventType") == "Run Status Change":
                run_events.append(found["id"])
    sent_ids = set(emitted["ids"])
    marked = {k.rsplit("/", 1)[-1].removesuffix(".json") for k in keys if k.startswith(f"{ARCHIVE_PREFIX}callbacks/")}
    dead = {
        k.rsplit("/", 1)[-1].removesuffix(".json")
        for k in keys
        if k.startswith(f"{ARCHIVE_PREFIX}dead-letter/callback/")
    }
    received = Counter(call["key"] for call in receiver.calls)
    unaccounted = [e for e in run_events if e not in marked and e not in dead]
    return {
        "emitted": emitted["sent"],
        "emit_failures": emitted["failed"],
        "archived": len(archived),
        "missing": sorted(sent_ids - set(archived))[:20],
        "missing_count": len(sent_ids - set(archived)),
        "archived_twice": [e for e, n in archived.items() if n > 1],
        "not_emitted": sorted(set(archived) - sent_ids)[:20],
        "malformed_dead_letters": sum(1 for k in keys if "/dead-letter/malformed/" in k),
        "processing_dead_letters": sum(1 for k in keys if "/dead-letter/processing/" in k),
        "callbacks": {
            "run_status_events": len(run_events),
            "delivered": len(marked),
            "dead_lettered": len(dead),
            "unaccounted": len(unaccounted),
            "received": len(received),
            "received_more_than_once": sum(1 for n in received.values() if n > 1),
        },
    }


def redeliveries(engine: sqlalchemy.Engine) -> int:
    """Event messages that reached the processor again (SQS redelivery) and were found archived."""
    with engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text(
                "SELECT value FROM xcom WHERE dag_id = 'healthomics_run_events' AND task_id = 'process_events' "
                "AND key = 'return_value'"
            )
        ).all()
    total = 0
    for (value,) in rows:
        document = json.loads(value) if isinstance(value, str | bytes) else value
        if isinstance(document, str):
            document = json.loads(document)
        total += int((document or {}).get("duplicate", 0))
    return total


def intake_dead_letters(s3: Any) -> int:
    keys = _objects(s3, "chaos-landing", "manifests/_healthomics/dead-letter/")
    return sum(1 for key in keys if "/tries/" not in key)
