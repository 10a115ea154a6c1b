"""Property-based tests (Hypothesis): whatever arrives, the parsers answer with a result or their
own validation error, never another exception, and what they accept is safe to use."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthomics.flowcell.plan import batch_groups, submission_problems
from healthomics.intake.manifests import MalformedNotificationError, flowcell_run_id, objects_in_notification
from healthomics.links.omics import run_links
from healthomics.manifest import FlowcellManifest, ManifestError, ManifestOptions, declared_flowcell_id, parse_manifest
from healthomics.manifest.parse import FLOWCELL_ID
from healthomics.utils.documents import DocumentError, read_json
from healthomics.utils.eventbridge import MalformedEventError, flat_event, parse_event
from healthomics.utils.s3 import parse_s3_uri
from healthomics.utils.service_model import named_shape_problems

PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROLE = "arn:aws:iam::123456789012:role/healthomics-run"
# Airflow's default allowed_run_id_pattern.
AIRFLOW_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]+$")

# Text that reaches the edges: controls, zero-width and combining characters, surrogate-free.
edgy_text = st.text(st.characters(codec="utf-8"), max_size=40)
plausible = st.sampled_from(
    [
        "NA12878",
        "s3://lab-fastq/FC1/NA12878.fq.gz",
        "s3://lab-output/FC1/",
        "s3://lab-fastq",
        "s3://",
        "s3://lab-output/x\n",
        "1234567",
        "arn:aws:omics:us-east-1:123456789012:workflow/1234567",
        ROLE,
        "READY2RUN",
        "",
        " ",
    ]
)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | edgy_text | plausible
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(edgy_text | plausible, inner, max_size=4),
    max_leaves=20,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | json_values


reference_rows = st.fixed_dictionaries(
    {},
    optional={
        "sampleId": maybe(plausible | edgy_text),
        "fastqFileRef": maybe(plausible),
        "ahoSampleWorkflowId": maybe(plausible),
        "OutputS3path": maybe(plausible),
    },
)
reference_manifests = st.fixed_dictionaries(
    {"flowcellSamples": maybe(st.lists(maybe(reference_rows), max_size=5))},
    optional={
        "qcWorkflow": maybe(
            st.fixed_dictionaries(
                {}, optional={"qcWorkflowFileRef": maybe(plausible), "ahoQcWorkflowId": maybe(plausible)}
            )
        )
    },
)
native_manifests = st.fixed_dictionaries(
    {"samples": maybe(st.lists(maybe(st.fixed_dictionaries({"sample_id": maybe(edgy_text | plausible)})), max_size=5))},
    optional={
        "flowcell_id": maybe(edgy_text | plausible),
        "workflow": maybe(st.fixed_dictionaries({"id": maybe(plausible)}, optional={"version": maybe(edgy_text)})),
        "run_defaults": maybe(st.fixed_dictionaries({}, optional={"role_arn": plausible, "output_uri": plausible})),
        "notification": maybe(st.fixed_dictionaries({}, optional={"report_uri": plausible})),
    },
)
# Mostly well-formed manifests, so the accepting path is exercised too.
sample_ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12) | st.from_regex(
    r"[A-Z]{2}[0-9]{3,6}", fullmatch=True
)
well_formed_rows = st.fixed_dictionaries(
    {
        "sampleId": sample_ids,
        "fastqFileRef": st.sampled_from(["s3://lab-fastq/a.fq.gz", "s3://lab-fastq/b.fq.gz", "s3://lab-fastq"]),
        "ahoSampleWorkflowId": st.sampled_from(["1234567", "arn:aws:omics:us-east-1:123456789012:workflow/7"]),
        "OutputS3path": st.sampled_from(["s3://lab-output/FC1/", "s3://lab-output/x\n", "s3://other-out"]),
    }
)
well_formed = st.fixed_dictionaries({"flowcellSamples": st.lists(well_formed_rows, min_size=1, max_size=4)})
csv_cells = st.lists(st.lists(plausible | edgy_text, max_size=5), max_size=6)


def csv_text(rows: list[list[str]]) -> str:
    return "sample,fastq_1,fastq_2\n" + "\n".join(",".join(row) for row in rows)


raw_manifests = (
    well_formed.map(json.dumps)
    | well_formed
    | reference_manifests.map(json.dumps)
    | native_manifests.map(json.dumps)
    | reference_manifests
    | native_manifests
    | csv_cells.map(csv_text)
    | json_values.map(json.dumps)
    | edgy_text
    | st.binary(max_size=200)
    | st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth)
    | st.integers(1, 3000).map(lambda depth: '{"samples": ' + "[" * depth)
)
sources = st.none() | st.sampled_from(["s3://landing/manifests/FC1.json", "s3://landing/m/FC 1.csv"]) | edgy_text


def check_accepted(manifest: FlowcellManifest) -> None:
    """What the parser accepts, the service would take."""
    assert FLOWCELL_ID.fullmatch(manifest.flowcell_id)
    for sample in manifest.samples:
        assert not named_shape_problems("RunSettingId", sample.sample_id, "")
        parse_s3_uri(sample.output_uri)
        for uri in sample.inputs:
            parse_s3_uri(uri, need_key=True)


@PROPERTIES
@given(raw=raw_manifests, source=sources, flowcell=st.none() | edgy_text | plausible)
def test_a_manifest_parses_or_raises_a_manifest_error(raw: Any, source: str | None, flowcell: str | None) -> None:
    options = ManifestOptions(role_arn=ROLE, flowcell_id=flowcell, workflow_id="1234567", output_uri="s3://lab-out/x")
    refused: list[str] = []
    try:
        manifest = parse_manifest(raw, options, source)
    except ManifestError as err:
        refused = [str(p) for p in err.problems] or ["(no problem listed)"]
    else:
        check_accepted(manifest)
        for problem in submission_problems("healthomics_flowcell", manifest, batch_groups("d", manifest)):
            assert problem.message  # a problem found there is listed, never raised
    assert all(0 < len(p) < 2_000 for p in refused)
    declared = declared_flowcell_id(raw, source)
    assert declared is None or isinstance(declared, str)


@PROPERTIES
@given(text=json_values.map(json.dumps) | edgy_text | st.binary(max_size=100))
def test_json_is_read_or_refused_with_a_document_error(text: str | bytes) -> None:
    try:
        document = read_json(text)
    except DocumentError:
        return
    assert all(isinstance(path, str) and isinstance(message, str) for path, message in document.problems)


event_envelopes = st.fixed_dictionaries(
    {},
    optional={
        "id": maybe(edgy_text | st.just("0c5c3b8e-9d2f-4c7e-8a4b-1f2e3d4c5b6a") | st.just("../../x")),
        "detail-type": maybe(st.sampled_from(["Run Status Change", "RunBatch Status Change"])),
        "source": maybe(st.just("aws.omics")),
        "time": maybe(st.sampled_from(["2026-11-25T20:44:32Z", "yesterday"])),
        "region": maybe(st.just("us-east-1")),
        "detail": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "status": maybe(st.sampled_from(["COMPLETED", "FAILED"])),
                    "runId": maybe(st.sampled_from(["1234567", "12a"]) | edgy_text),
                    "arn": maybe(st.just("arn:aws:omics:us-east-1:123456789012:run/1234567")),
                    "runOutputUri": maybe(plausible),
                },
            )
        ),
    },
)
well_formed_events = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["0c5c3b8e-9d2f-4c7e-8a4b-1f2e3d4c5b6a", "../../x", "x" * 1_100]) | edgy_text,
        "detail-type": st.sampled_from(["Run Status Change", "RunBatch Status Change"]),
        "source": st.just("aws.omics"),
        "time": st.sampled_from(["2026-11-25T20:44:32Z", "2026-11-25T20:44:32.123+00:00"]),
        "region": st.sampled_from(["us-east-1", "x/../y"]),
        "detail": st.fixed_dictionaries(
            {"status": st.sampled_from(["COMPLETED", "FAILED"]), "runId": st.sampled_from(["1234567", "12a"])},
            optional={"runOutputUri": plausible | edgy_text, "arn": plausible | edgy_text},
        ),
    }
)
event_bodies = (
    well_formed_events.map(json.dumps)
    | event_envelopes.map(json.dumps)
    | event_envelopes.map(lambda e: json.dumps({"Type": "Notification", "Message": json.dumps(e)}))
    | json_values.map(json.dumps)
    | edgy_text
    | st.integers(1, 5000).map(lambda depth: "{" * depth)
)


@PROPERTIES
@given(body=event_bodies)
def test_an_event_parses_or_is_malformed_and_what_parses_is_safe_to_file(body: str) -> None:
    try:
        event = parse_event(body)
    except MalformedEventError:
        return
    name = event.archive_name()
    assert "/" not in name and ".." not in name and len(name) <= 100
    flat_event(event)
    run_links(event.region, "aws", event.run_id, event.detail.get("runOutputUri"))


s3_records = st.fixed_dictionaries(
    {
        "eventName": maybe(st.just("ObjectCreated:Put")),
        "s3": maybe(
            st.fixed_dictionaries(
                {
                    "bucket": maybe(st.fixed_dictionaries({"name": maybe(st.sampled_from(["lab-in", "Lab"]))})),
                    "object": maybe(
                        st.fixed_dictionaries(
                            {"key": maybe(edgy_text | st.just("manifests/FC1.json"))},
                            optional={"eTag": maybe(st.just("0123abcd") | edgy_text)},
                        )
                    ),
                }
            )
        ),
    },
    optional={"eventTime": maybe(st.just("2026-11-25T20:44:32Z") | edgy_text)},
)
notifications = (
    st.lists(maybe(s3_records), max_size=3).map(lambda records: json.dumps({"Records": records}))
    | st.lists(s3_records, max_size=2).map(
        lambda records: json.dumps({"Type": "Notification", "Message": json.dumps({"Records": records})})
    )
    | json_values.map(json.dumps)
    | edgy_text
)


@PROPERTIES
@given(body=notifications)
def test_a_notification_announces_objects_or_is_malformed(body: str) -> None:
    try:
        objects = objects_in_notification(body)
    except MalformedNotificationError:
        return
    for obj in objects:
        parse_s3_uri(obj.uri, need_key=True)
        assert AIRFLOW_RUN_ID.match(flowcell_run_id(declared_flowcell_id(b"", obj.uri) or obj.key, obj.etag))
