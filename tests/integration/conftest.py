"""Airflow for the product's integration tests: a migrated metadata DB for dag.test(), a real
local Airflow cluster, the project's DAGs, and a lab (workflows, topic, queue) in the local stack.

The local AWS stack itself (moto and the HealthOmics emulator) comes from tests/aws_stack.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_aws.receiver import Receiver
from local_aws.stack import LocalAWS
from omics_emulator import EmulatorAdmin
from tests.aws_stack import ROLE_ARN

SAMPLES = ["NA12878", "NA12891", "NA12892", "NA12893"]
REPO = Path(__file__).resolve().parents[2]
# The cluster's manifest landing zone (its S3 events go to the cluster's manifest queue).
INTAKE_BUCKET = "sequencing-intake"
INTAKE_PREFIX = "manifests/incoming/"
EVENTS_BUCKET = "omics-event-archive"


@pytest.fixture(scope="session")
def airflow_env(local_aws: LocalAWS) -> Iterator[dict[str, str]]:
    """Airflow's metadata DB migrated and the local stack's connection set, for dag.test() in this process.

    The DB is the one tests/conftest.py's throwaway AIRFLOW_HOME points at (Airflow reads its
    settings once, at import).
    """
    import os
    import subprocess
    import sys

    env = local_aws.env()
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def airflow_cluster(local_aws: LocalAWS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real local Airflow (api-server, scheduler, dag-processor, triggerer) with the project's
    DAGs and the test DAGs, talking to the session's local AWS stack."""
    import shutil
    from pathlib import Path

    from local_airflow.deployment import LocalAirflow

    repo = Path(__file__).resolve().parents[2]
    home = tmp_path_factory.mktemp("airflow-cluster")
    dags = home / "dags"
    dags.mkdir()
    for source in (*(repo / "dags").glob("*.py"), *(Path(__file__).parent / "dags").glob("*.py")):
        shutil.copy(source, dags)
    # Where manifests land, and the queue their S3 events go to (healthomics_manifest_events).
    queue_url = local_aws.s3_events_to_queue(INTAKE_BUCKET, INTAKE_PREFIX, "healthomics-manifests")
    # Run status events (the emulator sends them where a test points it), their archive and receiver.
    run_events_queue = local_aws.client("sqs").create_queue(QueueName="healthomics-run-events")["QueueUrl"]
    local_aws.client("s3").create_bucket(Bucket=EVENTS_BUCKET)
    receiver = Receiver()
    env = {
        **local_aws.env(),
        "AIRFLOW__HEALTHOMICS__POLL_SECONDS": "1",
        # A receive cut short by a stopped triggerer hides its messages this long, then they return;
        # long enough that an intake run on a busy machine acknowledges before its messages do.
        "AIRFLOW__HEALTHOMICS__MANIFEST_VISIBILITY_SECONDS": "60",
        "AIRFLOW__HEALTHOMICS__MANIFEST_PREFIX": f"s3://{INTAKE_BUCKET}/{INTAKE_PREFIX}",
        "AIRFLOW__HEALTHOMICS__MANIFEST_QUEUE_URL": queue_url,
        "AIRFLOW_VAR_HEALTHOMICS_RUN_ROLE_ARN": ROLE_ARN,
        "AIRFLOW__HEALTHOMICS__RUN_EVENTS_QUEUE_URL": run_events_queue,
        "AIRFLOW__HEALTHOMICS__RUN_EVENTS_ARCHIVE_URI": f"s3://{EVENTS_BUCKET}/omics-events",
        "AIRFLOW_CONN_HEALTHOMICS_CALLBACK": receiver.url,
        "AIRFLOW__HEALTHOMICS__RUN_EVENTS_VISIBILITY_SECONDS": "60",
    }
    try:
        with LocalAirflow(workdir=home, dags_folder=dags, env=env) as cluster:
            cluster.manifest_queue_url = queue_url  # type: ignore[attr-defined]
            cluster.run_events_queue_url = run_events_queue  # type: ignore[attr-defined]
            cluster.receiver = receiver  # type: ignore[attr-defined]
            yield cluster
    finally:
        receiver.close()


@pytest.fixture
def project_dags(airflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The project's DAGs, freshly parsed on each call (dag.test() merges a run's conf into the
    DAG's params, so a parsed DAG serves one run), polling fast."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__HEALTHOMICS__POLL_SECONDS", "0.2")
    monkeypatch.setenv("AIRFLOW__HEALTHOMICS__SWEEP_POKE_SECONDS", "0.5")

    def parse(dag_id: str) -> Any:
        bag = DagBag(dag_folder=str(REPO / "dags"))
        assert not bag.import_errors, bag.import_errors
        return bag.get_dag(dag_id)

    return parse


@pytest.fixture
def flowcell_dag(project_dags: Any) -> Any:
    return project_dags("healthomics_flowcell")


@pytest.fixture
def pipeline_dag(project_dags: Any) -> Any:
    return project_dags("healthomics_pipeline")


@pytest.fixture
def stage_workflows(lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any) -> dict[str, str]:
    """align (FASTQ -> BAM), call (BAM -> VCF) and annotate (VCF -> annotated VCF), each writing its
    outputs to logs/outputs.json as ``<workflow>.<output>``."""
    templates = {
        "align": {"fastq": {"description": "reads"}, "sample_id": {"description": "id"}},
        "call": {"bam": {"description": "aligned reads"}, "sample_id": {"description": "id"}},
        "annotate": {"vcf": {"description": "calls"}, "aligned": {"optional": True, "description": "align run"}},
    }
    outputs = {"align": {"bam": "out/{runName}.bam"}, "call": {"vcf": "out/{runName}.vcf.gz"}, "annotate": {}}
    ids = {}
    for name, template in templates.items():
        created = omics.create_workflow(
            name=name, definitionUri=f"s3://defs/{name}.zip", requestId=str(uuid.uuid4()), parameterTemplate=template
        )
        ids[name] = created["id"]
    realtime.configure(profiles={name: {"outputs": outputs[name] or {"summary": "out/{runName}.json"}} for name in ids})
    realtime.advance(60)  # ACTIVE
    return ids


@pytest.fixture
def lab(realtime: EmulatorAdmin, omics: Any, s3: Any, local_aws: LocalAWS) -> dict[str, Any]:
    """A bucket with FASTQs, a sample workflow and a QC workflow, and an SNS topic with a reader."""
    bucket = f"lab-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    for sample in SAMPLES:
        s3.put_object(Bucket=bucket, Key=f"fastq/{sample}.fastq.gz", Body=b"@r\nACGT\n+\nFFFF\n")
    s3.put_object(Bucket=bucket, Key="qc/config.json", Body=b"{}")
    sample_wf = omics.create_workflow(
        name="germline",
        definitionUri="s3://defs/germline.zip",
        requestId=str(uuid.uuid4()),
        parameterTemplate={"sample_id": {"description": "id"}, "fastq": {"description": "reads"}},
    )
    qc_wf = omics.create_workflow(
        name="cohort-qc",
        definitionUri="s3://defs/qc.zip",
        requestId=str(uuid.uuid4()),
        parameterTemplate={"qc_config": {"description": "config"}, "samples": {"description": "samples"}},
    )
    realtime.advance(60)  # both ACTIVE
    sns, sqs = local_aws.client("sns"), local_aws.client("sqs")
    topic = sns.create_topic(Name=f"flowcells-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return {
        "bucket": bucket,
        "workflow": sample_wf["id"],
        "qc_workflow": qc_wf["id"],
        "topic": topic,
        "inbox": queue,
        "sqs": sqs,
    }
