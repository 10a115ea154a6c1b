"""Pipelines in the native manifest: stages and their graph, templates over the sample and earlier
stages' outputs, every problem listed before anything runs; rendering when a stage starts."""

from __future__ import annotations

import graphlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthomics.manifest import ManifestError, ManifestOptions, parse_manifest
from healthomics.manifest.pipeline import (
    StageResult,
    TemplateError,
    pipeline_problems,
    render,
    stage_needs,
    topological_order,
)

ROLE = "arn:aws:iam::123456789012:role/healthomics-run"


def pipeline(**fields: Any) -> dict[str, Any]:
    """Align (Ready2Run) -> call -> annotate, and a QC of the FASTQs beside them."""
    doc: dict[str, Any] = {
        "flowcell_id": "FC9",
        "run_defaults": {
            "role_arn": ROLE,
            "output_uri": "s3://lab-output/FC9",
            "parameters": {"reference": "s3://lab-ref/hg38.fa"},
            "tags": {"project": "cohort-b"},
        },
        "stages": [
            {
                "name": "align",
                "workflow": {"id": "9500764", "type": "READY2RUN"},
                "parameters": {"input_fastq": "{fastq}", "sample_name": "{sample_id}"},
                "outputs": ["aligned_bam", "aligned_bai"],
            },
            {
                "name": "call",
                "workflow": {"id": "2000001", "version": "1.4"},
                "parameters": {
                    "bam": "{stages.align.outputs.aligned_bam}",
                    "reference": "{reference}",
                    "prefix": "{stages.align.run_output_uri}calls/{sample_id}",
                },
                "run": {"storage_type": "DYNAMIC", "tags": {"stage": "call"}},
            },
            {
                "name": "annotate",
                "workflow": {"id": "2000002"},
                "parameters": {"vcf": "{stages.call.outputs.main.vcf}", "bam": "{stages.align.outputs.aligned_bam}"},
            },
            {
                "name": "fastq_qc",
                "needs": [],
                "workflow": {"id": "2000003"},
                "parameters": {"fastq": "{fastq}"},
                "run": {"output_uri": "s3://lab-qc/FC9"},
            },
        ],
        "samples": [
            {"sample_id": "S1", "parameters": {"fastq": "s3://lab-fastq/S1.fq.gz"}},
            {"sample_id": "S2", "parameters": {"fastq": ["s3://lab-fastq/S2_L1.fq.gz", "s3://lab-fastq/S2_L2.fq.gz"]}},
        ],
    }
    doc.update(fields)
    return doc


def problems_of(raw: Any, options: ManifestOptions | None = None) -> list[str]:
    with pytest.raises(ManifestError) as err:
        parse_manifest(raw, options or ManifestOptions())
    return [str(p) for p in err.value.problems]


def test_a_pipeline_parses_into_ordered_stages_and_samples_with_their_fields() -> None:
    manifest = parse_manifest(pipeline(), ManifestOptions())
    assert [s.name for s in manifest.stages] == ["align", "call", "annotate", "fastq_qc"]
    align, call, annotate, fastq_qc = manifest.stages
    assert (align.needs, call.needs, annotate.needs, fastq_qc.needs) == ([], ["align"], ["call"], [])
    assert align.workflow_type == "READY2RUN" and align.outputs == ["aligned_bam", "aligned_bai"]
    assert (call.output_uri, fastq_qc.output_uri) == ("s3://lab-output/FC9", "s3://lab-qc/FC9")
    settings = call.run_defaults(manifest.defaults)
    assert settings.run_fields()["storageType"] == "DYNAMIC"
    assert settings.run_fields()["workflowVersionName"] == "1.4"
    assert settings.tags == {"project": "cohort-b", "stage": "call"}
    assert align.run_defaults(manifest.defaults).workflow_type == "READY2RUN"
    assert manifest.workflows() == ["2000001", "2000002", "2000003", "9500764"]

    s1, s2 = manifest.samples
    # The samples carry the first stage's run, its parameters rendered; lists keep their type.
    assert (s1.workflow_id, s1.output_uri) == ("9500764", "s3://lab-output/FC9")
    assert s1.parameters == {"input_fastq": "s3://lab-fastq/S1.fq.gz", "sample_name": "S1"}
    assert s2.parameters["input_fastq"] == ["s3://lab-fastq/S2_L1.fq.gz", "s3://lab-fastq/S2_L2.fq.gz"]
    assert s1.fields == {"reference": "s3://lab-ref/hg38.fa", "fastq": "s3://lab-fastq/S1.fq.gz", "sample_id": "S1"}
    assert s2.inputs == ["s3://lab-fastq/S2_L1.fq.gz", "s3://lab-fastq/S2_L2.fq.gz", "s3://lab-ref/hg38.fa"]


def test_the_one_workflow_native_format_is_unchanged() -> None:
    doc = pipeline()
    del doc["stages"]
    doc["workflow"] = {"id": "1234567"}
    manifest = parse_manifest(doc, ManifestOptions())
    assert manifest.stages == [] and manifest.samples[0].fields == {}
    assert manifest.samples[0].parameters == {"reference": "s3://lab-ref/hg38.fa", "fastq": "s3://lab-fastq/S1.fq.gz"}


def test_every_problem_of_a_pipeline_is_listed_at_once() -> None:
    stages = [
        {"name": "align", "workflow": {"id": "9500764"}, "parameters": {"x": "{stages.call.outputs.vcf}"}},
        {"name": "call", "needs": ["align", "annotate"], "workflow": {"id": "2000001"}},
        {"name": "annotate", "workflow": {"id": "2000002"}, "parameters": {"vcf": "{stages.call.output.vcf}"}},
        {"name": "align", "needs": ["align"], "workflow": {"id": "not-a-number"}},
        {"name": "9lives", "needs": ["nowhere"], "workflow": {"id": "2000003"}},
        {
            "name": "report",
            "needs": ["call"],
            "workflow": {"id": "2000004"},
            "parameters": {
                "bam": "{stages.align.outputs.aligned_bam}",
                "mine": "{stages.report.run_id}",
                "ghost": "{stages.ghost.run_id}",
                "lane": "{lane}",
                "literal": "{ not a placeholder }",
            },
        },
    ]
    doc = pipeline(stages=stages, workflow={"id": "1234567"})
    doc["samples"][0]["workflow_id"] = "1234567"
    found = problems_of(doc)
    expected = [
        "manifest, workflow: a pipeline names its workflows per stage: remove workflow",
        "stages[3], name: duplicate stage name 'align' (first at stages[0])",
        "stages[4], name: '9lives' is not a stage name",
        "stages[3], needs: stage 'align' cannot need itself",
        "stages[4], needs: unknown stage 'nowhere'",
        "stages, needs: cycle: call -> annotate -> call",
        "stages[0], parameters.x: {stages.call.outputs.vcf}: stage 'align' does not need 'call'",
        "stages[2], parameters.vcf: {stages.call.output.vcf} is not a stage reference",
        "stages[5], parameters.mine: {stages.report.run_id}: a stage cannot read its own run",
        "stages[5], parameters.ghost: {stages.ghost.run_id} names unknown stage 'ghost'",
        "stages[3], workflow.id: workflow id must be numeric",
        "samples[0], workflow_id: the manifest has stages: workflows are named per stage",
        "samples[0], stage report parameters.lane: unknown sample field {lane}",
        "samples[1], stage report parameters.lane: unknown sample field {lane}",
    ]
    for message in expected:
        assert any(problem.startswith(message) for problem in found), (message, found)
    # The report stage needs call, which needs align: reading align's outputs is allowed.
    assert not any("parameters.bam" in problem for problem in found)
    assert not any("literal" in problem for problem in found)


def test_references_to_undeclared_outputs_are_refused() -> None:
    doc = pipeline()
    doc["stages"][1]["parameters"]["bam"] = "{stages.align.outputs.aligned_cram}"
    assert problems_of(doc) == [
        "stages[1], parameters.bam: {stages.align.outputs.aligned_cram}: stage 'align' declares no output "
        "'aligned_cram' (its outputs: aligned_bai, aligned_bam)"
    ]
    # Outputs not declared (call lists none): any key may be named, and is checked when the stage starts.
    doc = pipeline()
    doc["stages"][2]["parameters"]["vcf"] = "{stages.call.outputs.anything.at_all}"
    parse_manifest(doc, ManifestOptions())


def test_a_stage_starts_with_its_templates_filled_from_the_sample_and_earlier_runs() -> None:
    manifest = parse_manifest(pipeline(), ManifestOptions())
    call = manifest.stages[1]
    align = StageResult(
        run_id="1000001",
        run_output_uri="s3://lab-output/FC9/1000001/",
        outputs={"aligned_bam": "s3://lab-output/FC9/1000001/out/S1.bam", "aligned_bai": "s3://x.bai"},
    )
    assert render(call.parameters, manifest.samples[0].fields, {"align": align}) == {
        "bam": "s3://lab-output/FC9/1000001/out/S1.bam",
        "reference": "s3://lab-ref/hg38.fa",
        "prefix": "s3://lab-output/FC9/1000001/calls/S1",
    }
    # Whole placeholders keep the value's type (a list of shards stays a list).
    shards = StageResult("1000002", "s3://o/1000002/", {"main.vcf": ["s3://o/a.vcf", "s3://o/b.vcf"]})
    annotate = manifest.stages[2]
    assert render(annotate.parameters, {}, {"call": shards, "align": align})["vcf"] == ["s3://o/a.vcf", "s3://o/b.vcf"]
    with pytest.raises(
        TemplateError, match=r"stage 'align' \(run 1000001\) wrote no output 'aligned_bam'.*aligned_bai"
    ):
        render(
            call.parameters,
            manifest.samples[0].fields,
            {"align": StageResult("1000001", "s3://o/", {"aligned_bai": 1})},
        )
    with pytest.raises(TemplateError, match="stage 'align' has no completed run to read"):
        render(call.parameters, manifest.samples[0].fields, {})


# -- properties ----------------------------------------------------------------------------

names = st.sampled_from(["a", "b", "c", "d", "e", "f"])
graphs = st.dictionaries(names, st.lists(names, max_size=3, unique=True), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(graph=graphs)
def test_the_stage_order_respects_needs_and_cycles_are_found_exactly_when_there_are_some(
    graph: dict[str, list[str]],
) -> None:
    stages = [{"name": name, "needs": needs, "workflow": {"id": "1"}} for name, needs in graph.items()]
    order, cycles = topological_order(stage_needs(stages))
    known = {name: [n for n in needs if n in graph] for name, needs in graph.items()}
    try:
        list(graphlib.TopologicalSorter(known).static_order())
        acyclic = True
    except graphlib.CycleError:
        acyclic = False
    assert sorted(order) == sorted(graph)
    assert (not cycles) == acyclic
    if acyclic:
        position = {name: i for i, name in enumerate(order)}
        assert all(position[need] < position[name] for name, needs in known.items() for need in needs)
    cycle_problems = [p for p in pipeline_problems(stages) if p[2].startswith("cycle") or "cannot need itself" in p[2]]
    assert bool(cycle_problems) == (not acyclic)


field_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
values = st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.lists(st.integers(), max_size=3)


@settings(max_examples=200, deadline=None)
@given(fields=st.dictionaries(field_names, values, min_size=1, max_size=5), data=st.data())
def test_rendering_fills_every_known_field_and_keeps_whole_values_as_they_are(
    fields: dict[str, Any], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(fields)))
    prefix = data.draw(st.text(alphabet="abc/:-", min_size=1, max_size=5))
    template = {"whole": f"{{{name}}}", "inside": f"{prefix}{{{name}}}", "list": [f"{{{name}}}", 3], "n": None}
    rendered = render(template, fields, {})
    assert rendered["whole"] == fields[name]
    assert rendered["inside"] == f"{prefix}{fields[name]}"
    assert rendered["list"] == [fields[name], 3] and rendered["n"] is None


def test_a_broken_graph_is_listed_even_when_the_first_stage_reads_another() -> None:
    """The first stage in order is rendered for the samples only once the graph is sound."""
    stages = [
        {"name": "a", "needs": ["b"], "workflow": {"id": "1"}, "parameters": {"x": "{stages.b.run_id}"}},
        {"name": "b", "needs": ["a"], "workflow": {"id": "2"}, "parameters": {"y": "{stages.a.run_id}"}},
    ]
    assert "stages, needs: cycle: a -> b -> a" in problems_of(pipeline(stages=stages))
    lone = [{"name": "a", "workflow": {"id": "1"}, "parameters": {"x": "{stages.ghost.outputs.k}"}}]
    assert problems_of(pipeline(stages=lone)) == [
        "stages[0], parameters.x: {stages.ghost.outputs.k} names unknown stage 'ghost'"
    ]


def test_stage_outputs_obey_the_allowed_prefixes_and_stage_literals_are_inputs() -> None:
    doc = pipeline()
    doc["stages"][1]["run"]["output_uri"] = "s3://elsewhere/calls"
    doc["stages"][2]["parameters"]["db"] = "s3://lab-ref/dbsnp.vcf.gz"
    doc["samples"][0]["output_uri"] = "s3://lab-output/S1"
    found = problems_of(doc, ManifestOptions(allowed_output_prefixes=["s3://lab-output/", "s3://lab-qc/"]))
    assert found == [
        "samples[0], output_uri: the manifest has stages: output locations are set per stage (run)",
        "stages[1], run.output_uri: 's3://elsewhere/calls' is outside the allowed output prefixes "
        "('s3://lab-output/', 's3://lab-qc/')",
    ]
    del doc["samples"][0]["output_uri"]
    manifest = parse_manifest(doc, ManifestOptions())
    assert (
        "s3://lab-ref/dbsnp.vcf.gz" in manifest.samples[0].inputs
        and "s3://lab-ref/dbsnp.vcf.gz" in manifest.samples[1].inputs
    )
