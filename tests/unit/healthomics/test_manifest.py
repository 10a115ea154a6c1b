"""Manifests in all three formats: one model out, or every problem listed with where it is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from healthomics.manifest import ManifestError, ManifestOptions, parse_manifest

ROLE = "arn:aws:iam::123456789012:role/healthomics-run"
OPTIONS = ManifestOptions(role_arn=ROLE)


def reference(samples: list[dict[str, Any]], qc: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"flowcellSamples": samples}
    if qc is not None:
        doc["qcWorkflow"] = qc
    return doc


def ref_sample(sample_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "sampleId": sample_id,
        "fastqFileRef": f"s3://lab-fastq/FC1/{sample_id}.fastq.gz",
        "ahoSampleWorkflowId": "1234567",
        "OutputS3path": "s3://lab-output/FC1/",
        **overrides,
    }


def problems_of(raw: Any, options: ManifestOptions = OPTIONS, source: str | None = None) -> list[str]:
    with pytest.raises(ManifestError) as err:
        parse_manifest(raw, options, source)
    return [str(p) for p in err.value.problems]


def test_reference_format() -> None:
    manifest = parse_manifest(
        json.dumps(
            reference(
                [
                    ref_sample("NA12878"),
                    ref_sample("NA12891", ahoSampleWorkflowId="arn:aws:omics:us-east-1:1:workflow/7654321"),
                ],
                qc={
                    "qcWorkflowFileRef": "s3://lab-qc/qc.json",
                    "ahoQcWorkflowId": "2222222",
                    "OutputS3path": "s3://lab-qc/out/",
                },
            )
        ),
        OPTIONS,
        source_uri="s3://landing/manifests/FC-2026-11-25.json",
    )
    assert manifest.source_format == "reference"
    assert manifest.flowcell_id == "FC-2026-11-25"  # from the object name
    assert [s.sample_id for s in manifest.samples] == ["NA12878", "NA12891"]
    first, second = manifest.samples
    assert first.parameters == {"sample_id": "NA12878", "fastq": "s3://lab-fastq/FC1/NA12878.fastq.gz"}
    assert first.inputs == ["s3://lab-fastq/FC1/NA12878.fastq.gz"]
    assert second.workflow_id == "7654321"
    assert manifest.qc is not None and manifest.qc.workflow_id == "2222222"
    assert manifest.qc.parameters == {"qc_config": "s3://lab-qc/qc.json"}
    assert manifest.qc.policy.min_completed_fraction == 1.0
    assert manifest.defaults.role_arn == ROLE
    assert len(manifest.sha256) == 64


def test_the_published_reference_example_is_rejected_with_reasons() -> None:
    """The reference blog's own sample file: service 'healthomics' ARNs, upper-case bucket names."""
    published = reference(
        [
            {
                "sampleId": "sample1",
                "fastqFileRef": "s3://SamplesFASTQ/sample1.fastq.gz",
                "ahoSampleWorkflowId": "arn:aws:healthomics:us-east-1:123456789012:workflow/sample-workflow",
                "OutputS3path": "s3://SamplesFASTQOP/",
            }
        ]
    )
    found = problems_of(published, ManifestOptions(role_arn=ROLE, flowcell_id="FC1"))
    assert found == [
        "flowcellSamples[0], fastqFileRef: 's3://SamplesFASTQ/sample1.fastq.gz': 'SamplesFASTQ' is not a valid "
        "bucket name (3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit)",
        "flowcellSamples[0], ahoSampleWorkflowId: not a HealthOmics workflow ARN (service must be 'omics'): "
        "'arn:aws:healthomics:us-east-1:123456789012:workflow/sample-workflow'",
        "flowcellSamples[0], OutputS3path: 's3://SamplesFASTQOP/': 'SamplesFASTQOP' is not a valid bucket name "
        "(3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit)",
    ]


def test_every_problem_is_reported_at_once() -> None:
    found = problems_of(
        reference(
            [
                ref_sample("S1"),
                ref_sample("S1"),
                {"sampleId": "S3", "fastqFileRef": "", "ahoSampleWorkflowId": "1234567"},
                ref_sample("S4", fastqFileRef="https://example.org/S4.fq"),
            ]
        ),
        ManifestOptions(flowcell_id="FC1"),
    )
    assert found == [
        "flowcellSamples[2], fastqFileRef: required field is missing or empty",
        "flowcellSamples[2], OutputS3path: required field is missing or empty",
        "flowcellSamples[3], fastqFileRef: not an s3:// URI: 'https://example.org/S4.fq'",
        "flowcellSamples[1], sample_id: duplicate sample id 'S1' (first at flowcellSamples[0])",
        "manifest, role_arn: no run role: give the role_arn parameter or run_defaults.role_arn",
    ]


def test_empty_and_unrecognised_manifests() -> None:
    assert problems_of(reference([]), ManifestOptions(role_arn=ROLE, flowcell_id="FC1")) == [
        "manifest, samples: the manifest lists no samples"
    ]
    assert "unrecognised format" in problems_of({"hello": "world"})[0]
    assert "not valid JSON" in problems_of("{not json")[0]


def native(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "flowcell_id": "FC7",
        "workflow": {"id": "1234567", "version": "2.1"},
        "run_defaults": {
            "role_arn": ROLE,
            "output_uri": "s3://lab-output/FC7",
            "storage_type": "DYNAMIC",
            "cache_id": "5555555",
            "parameters": {"reference": "s3://lab-ref/hg38.fa", "version": "v1"},
            "tags": {"project": "cohort-a"},
        },
        "samples": [
            {"sample_id": "S1", "parameters": {"fastq_1": "s3://lab-fastq/S1_R1.fq.gz", "version": "v2"}},
            {"sample_id": "S2", "parameters": {"fastq_1": "s3://lab-fastq/S2_R1.fq.gz"}, "output_uri": "s3://other/S2"},
        ],
        "qc": {"workflow_id": "2222222", "output_uri": "s3://lab-qc/FC7", "min_completed_fraction": 0.9},
        "notification": {"sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:flowcells"},
    }
    doc.update(fields)
    return doc


def test_native_format() -> None:
    manifest = parse_manifest(native(), ManifestOptions())
    assert manifest.source_format == "native"
    assert manifest.flowcell_id == "FC7"
    s1, s2 = manifest.samples
    assert s1.parameters == {
        "reference": "s3://lab-ref/hg38.fa",
        "version": "v2",
        "fastq_1": "s3://lab-fastq/S1_R1.fq.gz",
    }
    assert s1.inputs == ["s3://lab-fastq/S1_R1.fq.gz", "s3://lab-ref/hg38.fa"]
    assert (s1.output_uri, s2.output_uri) == ("s3://lab-output/FC7", "s3://other/S2")
    assert manifest.defaults.run_fields() == {
        "roleArn": ROLE,
        "workflowType": "PRIVATE",
        "workflowVersionName": "2.1",
        "storageType": "DYNAMIC",
        "cacheId": "5555555",
    }
    assert manifest.defaults.tags == {"project": "cohort-a"}
    assert manifest.qc is not None and manifest.qc.policy.min_completed_fraction == 0.9
    assert manifest.notification.sns_topic_arn == "arn:aws:sns:us-east-1:123456789012:flowcells"


def test_native_format_schema_errors_have_paths() -> None:
    doc = native()
    doc["samples"][1]["sample_id"] = ""
    doc["samples"][0]["colour"] = "blue"
    doc["run_defaults"]["storage_type"] = "FAST"
    found = problems_of(doc)
    assert "manifest.run_defaults.storage_type: 'FAST' is not one of STATIC, DYNAMIC" in found
    assert any(p.startswith("manifest.samples[0]: Additional properties") and "colour" in p for p in found)
    assert any(p.startswith("manifest.samples[1].sample_id:") for p in found)


def test_samplesheet_lanes_and_extra_columns() -> None:
    sheet = (
        "sample,fastq_1,fastq_2,strandedness\n"
        "S1,s3://lab-fastq/S1_L001_R1.fq.gz,s3://lab-fastq/S1_L001_R2.fq.gz,reverse\n"
        " S1 , s3://lab-fastq/S1_L002_R1.fq.gz , s3://lab-fastq/S1_L002_R2.fq.gz ,reverse\n"
        "S2,s3://lab-fastq/S2_L001_R1.fq.gz,s3://lab-fastq/S2_L001_R2.fq.gz,forward\n"
    )
    manifest = parse_manifest(
        sheet,
        ManifestOptions(role_arn=ROLE, workflow_id="1234567", output_uri="s3://lab-output/FC9"),
        source_uri="s3://landing/manifests/FC9.csv",
    )
    assert manifest.flowcell_id == "FC9"
    s1, s2 = manifest.samples
    assert s1.parameters == {
        "sample_id": "S1",
        "fastq_1": ["s3://lab-fastq/S1_L001_R1.fq.gz", "s3://lab-fastq/S1_L002_R1.fq.gz"],
        "fastq_2": ["s3://lab-fastq/S1_L001_R2.fq.gz", "s3://lab-fastq/S1_L002_R2.fq.gz"],
        "strandedness": "reverse",
    }
    assert s2.parameters["fastq_1"] == "s3://lab-fastq/S2_L001_R1.fq.gz"  # one lane: a plain string
    assert len(s1.inputs) == 4


def test_samplesheet_problems_name_rows_and_columns() -> None:
    sheet = (
        "sample,fastq_1,fastq_2\n"
        "S1,s3://lab-fastq/S1_R1.fq.gz,s3://lab-fastq/S1_R2.fq.gz\n"
        "S1,s3://lab-fastq/S1_L2_R1.fq.gz,\n"
        "bad sample,s3://lab-fastq/x.fq.gz,\n"
        ",s3://lab-fastq/y.fq.gz,\n"
        "S4,s3://lab-fastq/S1_R1.fq.gz,\n"
    )
    found = problems_of(sheet, ManifestOptions(role_arn=ROLE, flowcell_id="FC1"))
    assert found == [
        "manifest, workflow_id: a samplesheet names no workflow: give the workflow_id parameter",
        "manifest, output_uri: a samplesheet names no output location: give the output_uri parameter",
        "row 4, sample: sample names cannot contain spaces: 'bad sample'",
        "row 5, sample: required field is missing or empty",
        "row 6, fastq_1: 's3://lab-fastq/S1_R1.fq.gz' is already listed in row 2",
        "row 2, fastq_2: sample 'S1' mixes single-end and paired-end lanes",
    ]
    assert problems_of("name,reads\nS1,x\n", source="s3://b/FC1.csv") == [
        "header, sample: required column is missing (columns: 'name', 'reads')",
        "header, fastq_1: required column is missing (columns: 'name', 'reads')",
    ]


def test_output_outside_the_allowed_prefixes() -> None:
    found = problems_of(
        reference([ref_sample("S1"), ref_sample("S2", OutputS3path="s3://scratch-bucket/x/")]),
        ManifestOptions(role_arn=ROLE, flowcell_id="FC1", allowed_output_prefixes=["s3://lab-output/"]),
    )
    assert found == [
        "flowcellSamples[1], output_uri: 's3://scratch-bucket/x/' is outside the allowed output prefixes "
        "('s3://lab-output/')"
    ]


def test_too_many_samples() -> None:
    sheet = "sample,fastq_1\n" + "".join(f"S{i},s3://lab-fastq/S{i}.fq.gz\n" for i in range(100_001))
    found = problems_of(
        sheet, ManifestOptions(role_arn=ROLE, flowcell_id="FC1", workflow_id="1", output_uri="s3://lab-out/x")
    )
    assert found == ["manifest, samples: 100001 samples; a run batch takes at most 100000"]


def test_parameter_map_placeholders() -> None:
    options = ManifestOptions(
        role_arn=ROLE,
        flowcell_id="FC1",
        parameter_map={"reads": "{fastq}", "label": "{sample_id}-wgs", "lane": "{lane}"},
    )
    found = problems_of(reference([ref_sample("S1")]), options)
    assert found == [
        "flowcellSamples[0] parameters.lane: unknown placeholder {lane} (known: fastq, fastq_1, sample_id)"
    ]


def test_content_hash_changes_with_content() -> None:
    first = parse_manifest(reference([ref_sample("S1")]), ManifestOptions(role_arn=ROLE, flowcell_id="FC1"))
    same = parse_manifest(reference([ref_sample("S1")]), ManifestOptions(role_arn=ROLE, flowcell_id="FC1"))
    edited = parse_manifest(
        reference([ref_sample("S1", fastqFileRef="s3://lab-fastq/v2/S1.fq.gz")]),
        ManifestOptions(role_arn=ROLE, flowcell_id="FC1"),
    )
    assert first.sha256 == same.sha256 != edited.sha256
