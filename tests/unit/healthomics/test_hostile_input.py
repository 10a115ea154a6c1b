"""Hostile manifests, events and notifications: each is refused naming where it is wrong, or
handled, and nothing is lost, crashes, or is echoed in full."""

from __future__ import annotations

import json
from typing import Any

import pytest

from healthomics.flowcell.delivery import SNS_MESSAGE_MAX_BYTES, sns_text
from healthomics.flowcell.plan import batch_groups, submission_problems
from healthomics.intake.manifests import (
    MalformedNotificationError,
    ManifestObject,
    flowcell_run_id,
    is_manifest,
    objects_in_notification,
)
from healthomics.links.omics import run_links
from healthomics.manifest import ManifestError, ManifestOptions, declared_flowcell_id, parse_manifest
from healthomics.utils.eventbridge import MalformedEventError, parse_event
from healthomics.utils.s3 import parse_s3_uri
from healthomics.utils.text import markdown_literal, one_line

from .test_manifest import ref_sample

ROLE = "arn:aws:iam::123456789012:role/healthomics-run"


def problems_of(raw: Any, source: str | None = None, **options: Any) -> list[str]:
    options.setdefault("role_arn", ROLE)
    with pytest.raises(ManifestError) as err:
        parse_manifest(raw, ManifestOptions(**options), source)
    return [str(p) for p in err.value.problems]


def native(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "flowcell_id": "FC7",
        "workflow": {"id": "1234567"},
        "run_defaults": {"role_arn": ROLE, "output_uri": "s3://lab-output/FC7"},
        "samples": [{"sample_id": "S1", "parameters": {"reads": "s3://lab-fastq/S1.fq.gz"}}],
    }
    doc.update(fields)
    return doc


# -- data silently lost or accepted -----------------------------------------------------


def test_a_key_given_twice_is_a_problem_named_by_its_path() -> None:
    first, second = json.dumps([ref_sample("S1")]), json.dumps([ref_sample("S2")])
    text = f'{{"flowcellSamples": {first}, "flowcellSamples": {second}}}'
    assert problems_of(text, flowcell_id="FC1") == [
        "manifest: key 'flowcellSamples' appears 2 times (only the last would count)"
    ]
    inner = '{"flowcellSamples": [{"sampleId": "S1", "sampleId": "S2", "fastqFileRef": "s3://lab-fastq/a.fq", '
    inner += '"ahoSampleWorkflowId": "1234567", "OutputS3path": "s3://lab-output/"}]}'
    assert problems_of(inner, flowcell_id="FC1") == [
        "manifest.flowcellSamples[0]: key 'sampleId' appears 2 times (only the last would count)"
    ]


def test_csv_values_that_would_be_dropped_are_problems() -> None:
    options = {"flowcell_id": "FC1", "workflow_id": "1234567", "output_uri": "s3://lab-output/FC1"}
    assert problems_of("sample,fastq_1\nS1,s3://lab-fastq/S1.fq.gz,s3://lab-fastq/extra.fq.gz\n", **options) == [
        "row 2: 3 values, but the header names 2 columns"
    ]
    assert problems_of("sample,fastq_1,fastq_1\nS1,s3://lab-fastq/a.fq.gz,s3://lab-fastq/b.fq.gz\n", **options) == [
        "header, fastq_1: column appears 2 times (columns 2, 3); one would be lost"
    ]
    assert problems_of("sample,fastq_1,,lane\nS1,s3://lab-fastq/a.fq.gz,L001,1\n", **options) == [
        "row 2: value 'L001' in column 3, which has no name in the header"
    ]
    # Trailing commas (a spreadsheet's export) lose nothing and are fine.
    manifest = parse_manifest(
        "sample,fastq_1,\nS1,s3://lab-fastq/a.fq.gz,\n", ManifestOptions(role_arn=ROLE, **options)
    )
    assert [s.sample_id for s in manifest.samples] == ["S1"]
    [unreadable] = problems_of("sample,fastq_1\nS1," + "x" * 200_000 + "\n", **options)
    assert unreadable.startswith("row 2: cannot be read as CSV: field larger than field limit")


def test_whole_buckets_trailing_newlines_and_empty_uris_are_refused() -> None:
    found = problems_of(
        {
            "flowcellSamples": [
                ref_sample("S1", fastqFileRef="s3://lab-fastq"),
                ref_sample("S2", fastqFileRef="s3://lab-fastq/"),
            ]
        },
        flowcell_id="FC1",
    )
    assert found == [
        "flowcellSamples[0], fastqFileRef: names a whole bucket, not an object or prefix in it: 's3://lab-fastq'",
        "flowcellSamples[1], fastqFileRef: names a whole bucket, not an object or prefix in it: 's3://lab-fastq/'",
    ]
    found = problems_of(
        native(
            run_defaults={"role_arn": ROLE, "output_uri": "s3://lab-output/FC7\n"}, notification={"report_uri": "s3://"}
        )
    )
    assert found == [
        "samples[0], output_uri: the key holds control or invisible characters: 's3://lab-output/FC7\\n'",
        "notification, report_uri: no bucket in 's3://'",
    ]
    assert problems_of(native(), report_uri="s3://lab-reports/x\n") == [
        "params, report_uri: the key holds control or invisible characters: 's3://lab-reports/x\\n'"
    ]


def test_every_output_is_held_to_the_allowed_prefixes_on_their_boundaries() -> None:
    allowed = ["s3://acc-results"]
    doc = native(
        samples=[
            {"sample_id": "S1", "parameters": {}, "output_uri": "s3://acc-results/FC7"},
            {"sample_id": "S2", "parameters": {}, "output_uri": "s3://acc-results-evil/FC7"},
        ],
        qc={"workflow_id": "2222222", "output_uri": "s3://acc-results-evil/qc"},
        notification={"report_uri": "s3://elsewhere/reports"},
    )
    assert problems_of(doc, allowed_output_prefixes=allowed) == [
        "samples[1], output_uri: 's3://acc-results-evil/FC7' is outside the allowed output prefixes ('s3://acc-results')",
        "notification, report_uri: 's3://elsewhere/reports' is outside the allowed output prefixes ('s3://acc-results')",
        "qc, output_uri: 's3://acc-results-evil/qc' is outside the allowed output prefixes ('s3://acc-results')",
    ]
    team = parse_s3_uri("s3://acc-results/team-a")
    assert parse_s3_uri("s3://acc-results/team-a/FC1").within(team)
    assert not parse_s3_uri("s3://acc-results/team-ab/FC1").within(team)
    assert not parse_s3_uri("s3://acc-results-evil/team-a").within(parse_s3_uri("s3://acc-results"))
    # (a refused manifest's report goes beside it: the folder holding its key)
    assert (
        parse_s3_uri("s3://lab-in/manifests/FC1.json").parent().join("_reports").uri == "s3://lab-in/manifests/_reports"
    )
    assert parse_s3_uri("s3://lab-in/FC1.json").parent().join("_reports").uri == "s3://lab-in/_reports"


def test_the_flowcell_id_is_checked_wherever_it_comes_from() -> None:
    manifest = {"flowcellSamples": [ref_sample("S1")]}
    assert problems_of(manifest, flowcell_id="FC1\nInjected: yes") == [
        "params, flowcell_id: 'FC1\\nInjected: yes' is not a flowcell id: 1-128 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    ]
    [from_name] = problems_of(manifest, source="s3://landing/manifests/FC 1.json")
    assert from_name.startswith("manifest, flowcell_id: 'FC 1' (taken from the file name) is not a flowcell id")
    assert from_name.endswith("; give the flowcell_id parameter")
    # (the schema's "$" lets a trailing newline through; the parser's own check does not)
    [declared] = problems_of(native(flowcell_id="FC7\n"))
    assert declared.startswith("manifest, flowcell_id: 'FC7\\n' is not a flowcell id")


@pytest.mark.parametrize(
    ("sample_id", "why"),
    [
        ("NA1\u200b2", "'NA1\\u200b2' has characters the service refuses"),  # zero-width space
        ("NA\x853", "'NA\\x853' has characters the service refuses"),  # a C1 control character
        ("NA12878 ", "'NA12878 ' starts or ends with white space"),
        ("\u00a0" + "x" * 39, "'\\xa0xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' starts or ends with white space"),
    ],
)
def test_sample_ids_the_service_would_refuse(sample_id: str, why: str) -> None:
    found = problems_of(native(samples=[{"sample_id": sample_id, "parameters": {}}]))
    assert any(p.startswith(f"samples[0], sample_id: {why}") for p in found), found


def test_a_sample_id_too_long_for_the_service() -> None:
    assert problems_of({"flowcellSamples": [ref_sample("x" * 129)]}, flowcell_id="FC1") == [
        "flowcellSamples[0], sample_id: 129 characters; the service takes at most 128"
    ]


def test_every_request_is_checked_against_the_service_model_before_submitting() -> None:
    doc = native(
        workflow={"id": "1234567", "version": "v 2"},
        run_defaults={"role_arn": ROLE, "output_uri": "s3://lab-output/FC7", "tags": {f"t{i}": "x" for i in range(40)}},
        samples=[
            {"sample_id": "S1", "parameters": {"blob": "x" * 60_000}, "tags": {f"s{i}": "x" for i in range(5)}},
            {"sample_id": "S2", "parameters": {}},
            {"sample_id": "S3", "parameters": {}},
        ],
    )
    manifest = parse_manifest(doc, ManifestOptions())
    problems = [str(p) for p in submission_problems("healthomics_flowcell", manifest, batch_groups("d", manifest))]
    refused = "the service would refuse this"
    version = "workflowVersionName: 'v 2' has characters the service refuses (pattern [A-Za-z0-9][A-Za-z0-9\\-\\._]*)"
    too_big = "parameters: 60,011 bytes of parameters; a run takes at most 50,000"
    assert problems == [
        f"3 samples ('S1', 'S2', 'S3'): {refused}: {version}",  # listed once, not once per sample
        f"sample 'S1': {refused}: {too_big}",
        # 40 + 5 of the manifest's, flowcell and sample, and the 5 a submitter adds (a clear sends StartRun)
        f"sample 'S1': {refused}: tags: 52 tags; a run takes at most 50",
        f"batch 'FC7-1234567': {refused}: defaultRunSetting.{version}",
        f"batch 'FC7-1234567': {refused}: batchRunSettings.inlineSettings[0].{too_big}",
    ]


def test_nesting_thousands_deep_is_a_problem_not_a_crash() -> None:
    assert problems_of("[" * 100_000) == ["manifest: nested more than 32 levels deep"]
    deep = '{"samples": ' + "[" * 5_000 + "]" * 5_000 + "}"
    assert problems_of(deep) == ["manifest: nested more than 32 levels deep"]
    nested: Any = "x"
    for _ in range(3_000):
        nested = {"a": nested}
    assert problems_of(native(samples=[{"sample_id": "S1", "parameters": nested}])) == [
        "manifest: manifest.samples[0].parameters" + ".a" * 29 + ": nested more than 32 levels deep"
    ]
    assert declared_flowcell_id("{" * 100_000, "s3://landing/manifests/FC9.json") == "FC9"


def test_a_huge_value_is_echoed_as_a_short_prefix() -> None:
    huge = json.dumps({"flowcellSamples": [ref_sample("x" * 50_000_000, fastqFileRef="ftp://" + "y" * 1_000_000)]})
    with pytest.raises(ManifestError) as error:
        parse_manifest(huge, ManifestOptions(role_arn=ROLE, flowcell_id="FC1"))
    assert len(str(error.value)) < 1_000
    assert "50,000,000 characters; the service takes at most 128" in str(error.value)


def test_non_finite_numbers_are_refused() -> None:
    assert problems_of('{"flowcellSamples": [], "x": NaN}', flowcell_id="FC1") == [
        "manifest.x: NaN is not a JSON number the service accepts"
    ]


# -- events and notifications ------------------------------------------------------------


def run_event(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "0c5c3b8e-9d2f-4c7e-8a4b-1f2e3d4c5b6a",
        "detail-type": "Run Status Change",
        "source": "aws.omics",
        "time": "2026-11-25T20:44:32Z",
        "region": "us-east-1",
        "detail": {"runId": "1234567", "status": "COMPLETED", "runOutputUri": "s3://lab-output/1234567"},
        **overrides,
    }


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        json.dumps(run_event(detail={"runId": "1; rm -rf", "status": "RUNNING"})),
        json.dumps(run_event(id=None)),
        json.dumps(run_event(time="x" * 5_000)),
        json.dumps({"Type": "Notification", "Message": json.dumps({"Type": "Notification", "Message": "{}"})}),
        '{"id": "a", "id": "b", "detail-type": "Run Status Change", "source": "aws.omics", "time": "", "detail": {}}',
    ],
)
def test_events_that_cannot_be_used_are_malformed_not_crashes(body: str) -> None:
    with pytest.raises(MalformedEventError):
        parse_event(body)


def test_archive_keys_come_from_bounded_ids() -> None:
    for crafted in ("../../x", "a/b", "x" * 1_100):
        name = parse_event(json.dumps(run_event(id=crafted))).archive_name()
        assert "/" not in name and ".." not in name and len(name) < 80
    uuid = run_event()["id"]
    assert parse_event(json.dumps(run_event())).archive_name() == f"event_20261125_204432_{uuid}.json"


def test_a_run_output_that_is_not_in_s3_gets_no_link_and_no_error() -> None:
    assert set(run_links("us-east-1", "aws", "1234567", "https://evil.example/x")) == {"console", "logs"}
    assert "outputs" in run_links("us-east-1", "aws", "1234567", "s3://lab-output/1234567")


@pytest.mark.parametrize(
    "body",
    [
        "{" * 50_000,
        json.dumps({"Records": "x"}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": 5}}}]}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "lab"}, "object": {}}}]}),
        json.dumps(
            {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": "lab-in"}, "object": {"key": "a%0A.json"}},
                    }
                ]
            }
        ),
        json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {}}}),
        json.dumps({"Type": "Notification", "Message": "[" * 10_000}),
    ],
)
def test_s3_notifications_that_cannot_be_used_are_malformed_not_crashes(body: str) -> None:
    with pytest.raises(MalformedNotificationError):
        objects_in_notification(body)


def test_the_package_s_own_folders_never_hold_manifests() -> None:
    prefix = "s3://lab-in/manifests/"
    assert is_manifest(ManifestObject("lab-in", "manifests/FC1.json", "e"), prefix)
    assert not is_manifest(ManifestObject("lab-in", "manifests/_reports/run/report.json", "e"), prefix)
    assert not is_manifest(ManifestObject("lab-in", "manifests/_healthomics/dead-letter/x.json", "e"), prefix)
    assert not is_manifest(ManifestObject("lab-in", "manifests-old/FC1.json", "e"), "s3://lab-in/manifests")


def test_a_crafted_key_is_shown_in_the_run_note_as_code() -> None:
    note = markdown_literal("s3://lab-in/manifests/[click](https://evil.example)`x`\n.json")
    assert note == "``s3://lab-in/manifests/[click](https://evil.example)`x`\\n.json``"
    assert flowcell_run_id("FC1\n[x](y)", "abc") == "manifest__FC1-x-y__abc"


def test_every_notification_fits_sns() -> None:
    samples = [
        {
            "sample_id": f"S{i:05d}",
            "status": "COMPLETED" if i % 10 else "FAILED",
            "run_id": str(i),
            "message": "m" * 200,
        }
        for i in range(20_000)
    ]
    report = {
        "flowcell_id": "FC1",
        "status": "FAILED",
        "dag_id": "healthomics_flowcell",
        "dag_run_id": "r",
        "submission_mode": "batch",
        "manifest": {"uri": None, "sha256": "0" * 64},
        "counts": {"COMPLETED": 18_000, "FAILED": 2_000},
        "samples": samples,
        "qc": {"status": "NOT_RUN"},
        "report_uri": "s3://lab-output/_reports/FC1/r/report.json",
    }
    text = sns_text(report)
    assert len(text.encode()) <= SNS_MESSAGE_MAX_BYTES
    assert "more lines are in the full report: s3://lab-output/_reports/FC1/r/report.json" in text
    small = sns_text({**report, "samples": samples[:30]})
    assert "S00029" in small and "not listed" not in small
    assert one_line("[FAILED] flowcell FC1\nBcc: x\u00e9", 100) == "[FAILED] flowcell FC1?Bcc: x?"
