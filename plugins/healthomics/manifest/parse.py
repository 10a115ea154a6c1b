"""Read a manifest in any supported format into a :class:`FlowcellManifest`, listing every problem.

Formats:

``reference``
    The Step Functions reference layout: ``{"flowcellSamples": [{"sampleId", "fastqFileRef",
    "ahoSampleWorkflowId", "OutputS3path"}], "qcWorkflow": {"qcWorkflowFileRef",
    "ahoQcWorkflowId", "OutputS3path"}}``.
``native``
    This package's JSON format, described by ``schema/flowcell-manifest.schema.json``.
``samplesheet``
    An nf-core style CSV: ``sample,fastq_1,fastq_2[,more columns]``; several rows of one
    sample are its lanes; extra columns become workflow parameters.

Nothing here touches AWS; :mod:`healthomics.flowcell.checks` adds the checks that do.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import ValidationError

from healthomics.manifest.model import (
    MAX_SAMPLES,
    FlowcellManifest,
    ManifestError,
    ManifestFormat,
    Notification,
    Problem,
    QcPolicy,
    QcSpec,
    RunDefaults,
    Sample,
    Stage,
)
from healthomics.manifest.pipeline import field_problems, pipeline_problems, render, stage_needs, topological_order
from healthomics.utils.documents import DocumentError, nesting_problems, read_json
from healthomics.utils.s3 import InvalidS3UriError, S3Uri, parse_s3_uri, within_any
from healthomics.utils.service_model import named_shape_problems
from healthomics.utils.text import shown

# How manifest fields become workflow parameters unless the manifest or the DAG says otherwise.
# A value that is exactly "{name}" takes the field as is (a list for several lanes).
DEFAULT_PARAMETER_MAPS: dict[str, dict[str, Any]] = {
    "reference": {"sample_id": "{sample_id}", "fastq": "{fastq}"},
    "samplesheet": {"sample_id": "{sample_id}", "fastq_1": "{fastq_1}", "fastq_2": "{fastq_2}"},
}
DEFAULT_QC_PARAMETER_MAP: dict[str, Any] = {"qc_config": "{qc_file}"}

# Patterns are applied with fullmatch: a "$" anchor would also match before a trailing newline.
WORKFLOW_ID = re.compile(r"[0-9]{1,18}")
WORKFLOW_ARN = re.compile(
    r"arn:(?P<partition>aws[\w-]*):(?P<service>[a-z-]+):(?P<region>[a-z0-9-]*):"
    r"(?P<account>[0-9]{0,12}):workflow/(?P<id>[^/]+)",
    re.ASCII,
)
ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
SNS_TOPIC_ARN = re.compile(r"arn:aws[\w-]*:sns:[a-z0-9-]+:[0-9]{12}:[\w-]{1,256}(\.fifo)?", re.ASCII)
# A flowcell id goes into run names, S3 keys of reports, DAG run ids and the SNS subject.
FLOWCELL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class ManifestOptions:
    """What the DAG run adds to (or overrides in) the manifest."""

    flowcell_id: str | None = None
    workflow_id: str | None = None
    role_arn: str | None = None
    output_uri: str | None = None
    parameter_map: dict[str, Any] | None = None
    qc_workflow_id: str | None = None
    qc_min_completed_fraction: float | None = None
    sns_topic_arn: str | None = None
    report_uri: str | None = None
    allowed_output_prefixes: list[str] = field(default_factory=list)
    run_defaults: dict[str, Any] = field(default_factory=dict)


class _Collector:
    """Gathers problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, location: str, field_name: str | None, message: str) -> None:
        self.problems.append(Problem(location=location, field=field_name, message=message))

    def require(self, record: dict[str, Any], name: str, location: str) -> str | None:
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            self.add(location, name, "required field is missing or empty")
            return None
        if not isinstance(value, str):
            self.add(location, name, f"must be a string, got {type(value).__name__}")
            return None
        return value.strip()

    def s3_uri(self, value: Any, location: str, field_name: str | None, *, need_key: bool = False) -> str | None:
        """``value`` if it is a usable ``s3://`` URI (``need_key``: an object or prefix, not a bucket)."""
        if value is None:
            return None
        try:
            parse_s3_uri(value, need_key=need_key)
        except InvalidS3UriError as err:
            self.add(location, field_name, str(err))
            return None
        return str(value)

    def workflow_id(self, value: str | None, location: str, field_name: str) -> str | None:
        if value is None:
            return None
        if WORKFLOW_ID.fullmatch(value):
            return value
        arn = WORKFLOW_ARN.fullmatch(value)
        if arn:
            if arn["service"] != "omics":
                self.add(
                    location, field_name, f"not a HealthOmics workflow ARN (service must be 'omics'): {shown(value)}"
                )
                return None
            if WORKFLOW_ID.fullmatch(arn["id"]):
                return arn["id"]
        self.add(location, field_name, f"workflow id must be numeric (or an omics workflow ARN): {shown(value)}")
        return None


def _detect(document: Any, text: str | None, source_uri: str | None) -> ManifestFormat | None:
    if isinstance(document, dict):
        if "flowcellSamples" in document:
            return "reference"
        if "samples" in document:
            return "native"
        return None
    if text is not None:
        header = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
        columns = [c.strip().lower() for c in header.split(",")]
        if "sample" in columns or (source_uri or "").lower().endswith(".csv"):
            return "samplesheet"
    return None


def _flowcell_from_uri(source_uri: str | None) -> str | None:
    if not source_uri:
        return None
    stem = PurePosixPath(source_uri.split("?", 1)[0]).stem
    return stem or None


def declared_flowcell_id(raw: bytes | str | dict[str, Any], source_uri: str | None = None) -> str | None:
    """The flowcell id a manifest declares, by the rule :func:`parse_manifest` follows.

    The native format's ``flowcell_id``, else the file name's stem. Never raises, so it also
    names a manifest too broken to parse (whose run then fails on it and says why); a declared
    id that is not a valid flowcell id is passed over for the file name.
    """
    document = _json_object(raw)
    declared = document.get("flowcell_id") if document is not None else None
    if isinstance(declared, str) and FLOWCELL_ID.fullmatch(declared.strip()):
        return declared.strip()
    return _flowcell_from_uri(source_uri)


def declares_stages(raw: bytes | str | dict[str, Any]) -> bool:
    """Whether a manifest is a pipeline (native format with ``stages``); never raises."""
    document = _json_object(raw)
    return document is not None and bool(document.get("stages"))


def _json_object(raw: bytes | str | dict[str, Any]) -> dict[str, Any] | None:
    """The manifest as a JSON object, if it is one (without validating it)."""
    if isinstance(raw, dict):
        return raw
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        document = read_json(text).value if text.lstrip().startswith("{") else None
    except DocumentError:
        return None
    return document if isinstance(document, dict) else None


def render_parameters(template: Any, values: dict[str, Any], location: str, problems: _Collector) -> Any:
    """Fill ``{name}`` placeholders; a value that is exactly ``"{name}"`` keeps the field's own type."""
    if isinstance(template, dict):
        return {k: render_parameters(v, values, f"{location}.{k}", problems) for k, v in template.items()}
    if isinstance(template, list):
        return [render_parameters(v, values, location, problems) for v in template]
    if not isinstance(template, str):
        return template
    whole = PLACEHOLDER.fullmatch(template)
    if whole:
        name = whole.group(1)
        if name not in values:
            problems.add(location, None, f"unknown placeholder {{{name}}} (known: {', '.join(sorted(values))})")
            return None
        return values[name]
    missing = [n for n in PLACEHOLDER.findall(template) if n not in values]
    if missing:
        problems.add(
            location, None, f"unknown placeholder(s) {', '.join(missing)} (known: {', '.join(sorted(values))})"
        )
        return template
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


# -- reference (Step Functions) format ----------------------------------------------------


def _parse_reference(document: dict[str, Any], options: ManifestOptions, problems: _Collector) -> dict[str, Any]:
    rows = document.get("flowcellSamples")
    if not isinstance(rows, list):
        problems.add("manifest", "flowcellSamples", "must be a list of samples")
        rows = []
    mapping = options.parameter_map or DEFAULT_PARAMETER_MAPS["reference"]
    samples = []
    ids: list[tuple[str, str]] = []
    for index, row in enumerate(rows):
        where = f"flowcellSamples[{index}]"
        if not isinstance(row, dict):
            problems.add(where, None, "must be an object")
            continue
        sample_id = problems.require(row, "sampleId", where)
        if sample_id:
            ids.append((sample_id, where))
        fastq = problems.s3_uri(problems.require(row, "fastqFileRef", where), where, "fastqFileRef", need_key=True)
        workflow = problems.workflow_id(
            problems.require(row, "ahoSampleWorkflowId", where) if not options.workflow_id else options.workflow_id,
            where,
            "ahoSampleWorkflowId",
        )
        output = problems.s3_uri(
            problems.require(row, "OutputS3path", where) if not options.output_uri else options.output_uri,
            where,
            "OutputS3path",
        )
        if sample_id and fastq and workflow and output:
            values = {"sample_id": sample_id, "fastq": fastq, "fastq_1": fastq}
            samples.append(
                {
                    "sample_id": sample_id,
                    "workflow_id": workflow,
                    "output_uri": output,
                    "parameters": render_parameters(mapping, values, f"{where} parameters", problems),
                    "inputs": [fastq],
                    "location": where,
                }
            )
    qc = None
    qc_doc = document.get("qcWorkflow")
    if qc_doc is not None:
        where = "qcWorkflow"
        if not isinstance(qc_doc, dict):
            problems.add(where, None, "must be an object")
        else:
            qc_file = problems.s3_uri(
                problems.require(qc_doc, "qcWorkflowFileRef", where), where, "qcWorkflowFileRef", need_key=True
            )
            qc_workflow = problems.workflow_id(
                options.qc_workflow_id or problems.require(qc_doc, "ahoQcWorkflowId", where), where, "ahoQcWorkflowId"
            )
            qc_output = problems.s3_uri(problems.require(qc_doc, "OutputS3path", where), where, "OutputS3path")
            if qc_file and qc_workflow and qc_output:
                qc = {
                    "workflow_id": qc_workflow,
                    "output_uri": qc_output,
                    "parameters": render_parameters(DEFAULT_QC_PARAMETER_MAP, {"qc_file": qc_file}, where, problems),
                }
    return {"samples": samples, "ids": ids, "qc": qc, "defaults": {}, "notification": {}, "flowcell_id": None}


# -- native format -----------------------------------------------------------------------


@cache
def native_schema() -> dict[str, Any]:
    """The JSON Schema of the native manifest format (shipped with the package)."""
    text = resources.files("healthomics.manifest").joinpath("schema/flowcell-manifest.schema.json").read_text()
    return dict(json.loads(text))


def _json_path(path: Any) -> str:
    out = "manifest"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _path_order(error: Any) -> list[tuple[int, int, str]]:
    """Sort key of a schema error's path (list indexes in numeric order, names by name)."""
    return [(0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in error.path]


def _schema_message(error: Any) -> str:
    """A schema error's message, echoing the offending value only as a short prefix."""
    instance, rule, limit = error.instance, error.validator, error.validator_value
    if rule in ("maxLength", "minLength") and isinstance(instance, str):
        bound = "most" if rule == "maxLength" else "least"
        return f"{shown(instance)} has {len(instance):,} characters; at {bound} {limit} allowed"
    if rule in ("maxItems", "minItems", "maxProperties") and isinstance(instance, list | dict):
        bound = "least" if rule == "minItems" else "most"
        return f"{len(instance):,} entries; at {bound} {limit:,} allowed"
    if rule == "pattern":
        return f"{shown(instance)} does not match {limit}"
    if rule == "enum":
        return f"{shown(instance)} is not one of {', '.join(str(v) for v in limit)}"
    if rule == "type":
        return f"{shown(instance)} is not of type {limit if isinstance(limit, str) else ' or '.join(limit)}"
    return str(error.message)


def _parse_native(document: dict[str, Any], options: ManifestOptions, problems: _Collector) -> dict[str, Any]:
    for error in sorted(Draft202012Validator(native_schema()).iter_errors(document), key=_path_order):
        problems.add(_json_path(error.path), None, _schema_message(error))
    if problems.problems:  # (the flowcell id still names the report of the refusal)
        return {"flowcell_id": document.get("flowcell_id")}
    workflow = document.get("workflow", {})
    defaults = dict(document.get("run_defaults", {}))
    default_parameters = defaults.pop("parameters", {})
    default_output = options.output_uri or defaults.pop("output_uri", None)
    defaults.pop("output_uri", None)
    defaults["workflow_type"] = workflow.get("type", "PRIVATE")
    if workflow.get("version"):
        defaults["workflow_version_name"] = workflow["version"]
    if "stages" in document:
        return _parse_pipeline(document, options, problems, defaults, default_parameters, default_output)
    samples = []
    for index, entry in enumerate(document["samples"]):
        where = f"samples[{index}]"
        workflow_id = problems.workflow_id(
            options.workflow_id or entry.get("workflow_id") or workflow.get("id"), where, "workflow_id"
        )
        if workflow_id is None and not (entry.get("workflow_id") or workflow.get("id")):
            problems.add(where, "workflow_id", "no workflow: set workflow.id or the sample's workflow_id")
        output = entry.get("output_uri") or default_output
        if not output:
            problems.add(where, "output_uri", "no output location: set run_defaults.output_uri or the sample's")
        problems.s3_uri(output, where, "output_uri")
        parameters = {**default_parameters, **entry.get("parameters", {})}
        inputs = sorted(_s3_values(parameters))
        for uri in inputs:
            problems.s3_uri(uri, f"{where}.parameters", None, need_key=True)
        samples.append(
            {
                "sample_id": entry["sample_id"],
                "workflow_id": workflow_id,
                "output_uri": output,
                "parameters": parameters,
                "name": entry.get("name"),
                "priority": entry.get("priority"),
                "tags": entry.get("tags", {}),
                "inputs": inputs,
                "location": where,
            }
        )
    return _native_result(document, options, problems, samples, defaults)


def _native_result(
    document: dict[str, Any],
    options: ManifestOptions,
    problems: _Collector,
    samples: list[dict[str, Any]],
    defaults: dict[str, Any],
    stages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    qc = None
    if document.get("qc"):
        qc_doc = document["qc"]
        qc = {
            "workflow_id": problems.workflow_id(options.qc_workflow_id or qc_doc["workflow_id"], "qc", "workflow_id"),
            "output_uri": problems.s3_uri(qc_doc["output_uri"], "qc", "output_uri"),
            "parameters": qc_doc.get("parameters", {}),
            "samples_parameter": qc_doc.get("samples_parameter", "samples"),
            "policy": {"min_completed_fraction": qc_doc.get("min_completed_fraction", 1.0)},
        }
    return {
        "samples": samples,
        "ids": [(s["sample_id"], s["location"]) for s in samples],
        "qc": qc,
        "defaults": defaults,
        "stages": stages or [],
        "notification": document.get("notification", {}),
        "flowcell_id": document.get("flowcell_id"),
    }


def _parse_pipeline(
    document: dict[str, Any],
    options: ManifestOptions,
    problems: _Collector,
    defaults: dict[str, Any],
    default_parameters: dict[str, Any],
    default_output: str | None,
) -> dict[str, Any]:
    """The native format with ``stages``: the graph, each stage's workflow and output, and per sample
    its template fields, checked; the samples carry the first stage's rendered parameters."""
    documents: list[dict[str, Any]] = document["stages"]
    if document.get("workflow"):
        problems.add("manifest", "workflow", "a pipeline names its workflows per stage: remove workflow")
    if options.workflow_id:
        problems.add("params", "workflow_id", "the manifest has stages: a workflow_id parameter cannot replace them")
    graph_problems = pipeline_problems(documents)
    for location, field_name, message in graph_problems:
        problems.add(location, field_name, message)
    order, _ = topological_order(stage_needs(documents))
    needs = stage_needs(documents)
    by_name = {str(d["name"]): (index, d) for index, d in enumerate(documents)}
    stages = []
    for name in order:
        index, stage_doc = by_name[name]
        where = f"stages[{index}]"
        run = dict(stage_doc.get("run", {}))
        output = run.pop("output_uri", None) or default_output
        if not output:
            problems.add(where, "run.output_uri", "no output location: set run_defaults.output_uri or the stage's")
        problems.s3_uri(output, where, "run.output_uri")
        workflow = stage_doc["workflow"]
        stages.append(
            {
                "name": name,
                "needs": needs[name],
                "workflow_id": problems.workflow_id(workflow["id"], where, "workflow.id"),
                "workflow_type": workflow.get("type", "PRIVATE"),
                "workflow_version_name": workflow.get("version"),
                "parameters": stage_doc.get("parameters", {}),
                "output_uri": output,
                "run": run,
                "outputs": stage_doc.get("outputs"),
                "location": where,
            }
        )
    # S3 locations written into the stages' templates themselves (a reference genome, say) are inputs too.
    stage_inputs = {uri for stage in stages for uri in _s3_values(stage["parameters"]) if "{" not in uri}
    for stage in stages:
        for uri in sorted(u for u in _s3_values(stage["parameters"]) if "{" not in u):
            problems.s3_uri(uri, f"{stage['location']}.parameters", None, need_key=True)
    first = stages[0] if stages else None
    samples = []
    for index, entry in enumerate(document["samples"]):
        where = f"samples[{index}]"
        if entry.get("workflow_id"):
            problems.add(where, "workflow_id", "the manifest has stages: workflows are named per stage")
        if entry.get("output_uri"):
            problems.add(where, "output_uri", "the manifest has stages: output locations are set per stage (run)")
        fields = {**default_parameters, **entry.get("parameters", {}), "sample_id": entry["sample_id"]}
        for stage in stages:
            for path, message in field_problems(stage["parameters"], fields):
                problems.add(where, f"stage {stage['name']} {path}", message)
        for uri in sorted(_s3_values(fields)):
            problems.s3_uri(uri, f"{where}.parameters", None, need_key=True)
        inputs = sorted(_s3_values(fields) | stage_inputs)
        parameters: dict[str, Any] = {}
        if first is not None and not graph_problems and not field_problems(first["parameters"], fields):
            parameters = render(first["parameters"], fields, {})  # a first stage reads no other stage
        samples.append(
            {
                "sample_id": entry["sample_id"],
                "workflow_id": first["workflow_id"] if first else None,
                "output_uri": first["output_uri"] if first else None,
                "parameters": parameters,
                "fields": fields,
                "name": entry.get("name"),
                "priority": entry.get("priority"),
                "tags": entry.get("tags", {}),
                "inputs": inputs,
                "location": where,
            }
        )
    return _native_result(document, options, problems, samples, defaults, stages)


def _s3_values(value: Any) -> set[str]:
    """Every string in a parameter document that names an S3 location (the sample's inputs)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and item.startswith("s3://"):
            found.add(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


# -- nf-core style samplesheet -------------------------------------------------------------


def _read_table(text: str, problems: _Collector) -> tuple[list[str], list[tuple[int, dict[str, str]]]] | None:
    """Header and rows (numbered as records, the header being row 1) as dicts; None if unreadable.

    Nothing is dropped without a word: a column named twice, a value under an unnamed column
    or past the last column, and text the csv module cannot read are all problems.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    records: list[list[str]] = []
    try:
        records.extend(reader)
    except csv.Error as err:  # a NUL byte, a field past the csv module's size limit, ...
        problems.add(f"row {len(records) + 1}", None, f"cannot be read as CSV: {err}")
        return None
    columns = [c.strip() for c in records[0]] if records else []
    positions: dict[str, list[int]] = {}
    for index, name in enumerate(columns, start=1):
        if name:
            positions.setdefault(name, []).append(index)
    for name, where in positions.items():
        if len(where) > 1:
            numbers = ", ".join(str(i) for i in where)
            problems.add("header", name, f"column appears {len(where)} times (columns {numbers}); one would be lost")
    rows = []
    for row_number, values in enumerate(records[1:], start=2):
        row: dict[str, str] = {}
        for index, value in enumerate(values):
            value = value.strip()
            name = columns[index] if index < len(columns) else ""
            if name:
                row.setdefault(name, value)
            elif value:
                if index < len(columns):
                    message = f"value {shown(value)} in column {index + 1}, which has no name in the header"
                else:
                    message = f"{len(values)} values, but the header names {len(columns)} columns"
                problems.add(f"row {row_number}", None, message)
                if index >= len(columns):
                    break
        rows.append((row_number, row))
    return columns, rows


def _parse_samplesheet(text: str, options: ManifestOptions, problems: _Collector) -> dict[str, Any]:
    table = _read_table(text, problems)
    if table is None:
        return {}
    columns, rows = table
    for required in ("sample", "fastq_1"):
        if required not in columns:
            listed = ", ".join(shown(c, 40) for c in columns[:20]) or "none"
            problems.add("header", required, f"required column is missing (columns: {listed})")
    if problems.problems:
        return {}
    if not options.workflow_id:
        problems.add("manifest", "workflow_id", "a samplesheet names no workflow: give the workflow_id parameter")
    if not options.output_uri:
        problems.add("manifest", "output_uri", "a samplesheet names no output location: give the output_uri parameter")
    extra = [c for c in dict.fromkeys(columns) if c and c not in ("sample", "fastq_1", "fastq_2")]
    lanes: dict[str, list[tuple[int, dict[str, str]]]] = {}
    seen_files: dict[str, int] = {}
    for row_number, row in rows:
        where = f"row {row_number}"
        if not any(row.values()):
            continue
        sample = row.get("sample", "")
        if not sample:
            problems.add(where, "sample", "required field is missing or empty")
            continue
        if " " in sample:
            problems.add(where, "sample", f"sample names cannot contain spaces: {shown(sample)}")
        for column in ("fastq_1", "fastq_2"):
            value = row.get(column, "")
            if column == "fastq_1" and not value:
                problems.add(where, column, "required field is missing or empty")
            elif value:
                problems.s3_uri(value, where, column, need_key=True)
                if value in seen_files:
                    problems.add(where, column, f"{shown(value)} is already listed in row {seen_files[value]}")
                seen_files.setdefault(value, row_number)
        lanes.setdefault(sample, []).append((row_number, row))
    samples = []
    mapping = options.parameter_map or DEFAULT_PARAMETER_MAPS["samplesheet"]
    for sample_id, rows in lanes.items():
        first_row = rows[0][0]
        where = f"row {first_row}"
        paired = {bool(r.get("fastq_2")) for _, r in rows}
        if len(paired) > 1:
            problems.add(where, "fastq_2", f"sample {shown(sample_id)} mixes single-end and paired-end lanes")
        fastq_1 = [r["fastq_1"] for _, r in rows if r.get("fastq_1")]
        fastq_2 = [r["fastq_2"] for _, r in rows if r.get("fastq_2")]
        values: dict[str, Any] = {
            "sample_id": sample_id,
            "fastq_1": fastq_1[0] if len(fastq_1) == 1 else fastq_1,
            "fastq_2": (fastq_2[0] if len(fastq_2) == 1 else fastq_2) if fastq_2 else None,
            "lanes": len(rows),
        }
        values["fastq"] = values["fastq_1"]
        for column in extra:
            distinct = {r.get(column, "") for _, r in rows}
            if len(distinct) > 1:
                values_seen = ", ".join(shown(v, 40) for v in sorted(distinct)[:5])
                problems.add(where, column, f"lanes of sample {shown(sample_id)} disagree: {values_seen}")
            values[column] = rows[0][1].get(column, "")
        parameters = render_parameters(mapping, values, f"{where} parameters", problems)
        if isinstance(parameters, dict):
            parameters = {k: v for k, v in parameters.items() if v is not None}
            for column in extra:
                parameters.setdefault(column, values[column])
        samples.append(
            {
                "sample_id": sample_id,
                "workflow_id": problems.workflow_id(options.workflow_id, where, "workflow_id")
                if options.workflow_id
                else None,
                "output_uri": options.output_uri,
                "parameters": parameters,
                "inputs": fastq_1 + fastq_2,
                "location": where,
            }
        )
    ids = [(s["sample_id"], s["location"]) for s in samples]
    return {"samples": samples, "ids": ids, "qc": None, "defaults": {}, "notification": {}, "flowcell_id": None}


# -- common checks and assembly ---------------------------------------------------------------


def _sample_id_problems(sample_id: str) -> list[str]:
    """Why ``sample_id`` cannot name a run (it is the batch's runSettingId and part of the run name)."""
    found = named_shape_problems("RunSettingId", sample_id, "")
    if not found and sample_id.strip() != sample_id:
        found.append(f"{shown(sample_id)} starts or ends with white space")
    return found


def _allowed_prefixes(options: ManifestOptions, problems: _Collector) -> list[S3Uri]:
    prefixes = []
    for index, prefix in enumerate(options.allowed_output_prefixes):
        try:
            prefixes.append(parse_s3_uri(prefix))
        except InvalidS3UriError as err:
            problems.add("allowed output prefixes", f"[{index}]", f"{err} (fix the deployment's setting)")
    return prefixes


def _check_allowed(
    uri: str | None, prefixes: list[S3Uri], options: ManifestOptions, where: str, field_name: str, problems: _Collector
) -> None:
    """Outputs, QC outputs and reports go only under the deployment's allowed prefixes (when it sets any)."""
    if not uri or not options.allowed_output_prefixes:
        return
    try:
        location = parse_s3_uri(uri)
    except InvalidS3UriError:
        return  # already a problem of its own
    if not within_any(location, prefixes):
        allowed = ", ".join(shown(p, 100) for p in options.allowed_output_prefixes[:10])
        problems.add(where, field_name, f"{shown(uri, 200)} is outside the allowed output prefixes ({allowed})")


def _common_checks(
    samples: list[dict[str, Any]],
    ids: list[tuple[str, str]],
    prefixes: list[S3Uri],
    options: ManifestOptions,
    problems: _Collector,
) -> None:
    """Checks over every sample id seen (even in rows with other problems) and every valid sample."""
    if not ids and not problems.problems:
        problems.add("manifest", "samples", "the manifest lists no samples")
    if len(ids) > MAX_SAMPLES:
        problems.add("manifest", "samples", f"{len(ids)} samples; a run batch takes at most {MAX_SAMPLES}")
    first_seen: dict[str, str] = {}
    for sample_id, where in ids:
        for message in _sample_id_problems(sample_id):
            problems.add(where, "sample_id", message)
        if sample_id in first_seen:
            problems.add(
                where, "sample_id", f"duplicate sample id {shown(sample_id)} (first at {first_seen[sample_id]})"
            )
        first_seen.setdefault(sample_id, where)
    for sample in samples:
        _check_allowed(sample.get("output_uri"), prefixes, options, sample["location"], "output_uri", problems)


def _flowcell_id(options: ManifestOptions, declared: Any, source_uri: str | None, problems: _Collector) -> str | None:
    """The flowcell id (the parameter, else the manifest's, else the file name's), if it is a valid one."""
    value: Any
    if options.flowcell_id:
        value, where, origin = options.flowcell_id, "params", ""
    elif declared:
        value, where, origin = declared, "manifest", ""
    else:
        value, where, origin = _flowcell_from_uri(source_uri), "manifest", " (taken from the file name)"
    if not value:
        problems.add("manifest", "flowcell_id", "no flowcell id: give the flowcell_id parameter")
        return None
    if not isinstance(value, str) or not FLOWCELL_ID.fullmatch(value):
        problems.add(
            where,
            "flowcell_id",
            f"{shown(value)}{origin} is not a flowcell id: 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit" + ("; give the flowcell_id parameter" if origin else ""),
        )
        return None
    return value


def parse_manifest(
    raw: bytes | str | dict[str, Any], options: ManifestOptions | None = None, source_uri: str | None = None
) -> FlowcellManifest:
    """Parse and validate a manifest; raise :class:`ManifestError` listing every problem."""
    options = options or ManifestOptions()
    problems = _Collector()
    for name, value in (("params.parameter_map", options.parameter_map), ("params.run_defaults", options.run_defaults)):
        nested = nesting_problems(value, root=name)
        if nested:
            raise ManifestError([Problem(location=name, message=nested[0])], source_uri)
    if isinstance(raw, dict):
        nested = nesting_problems(raw, root="manifest")
        if nested:
            raise ManifestError([Problem(location="manifest", message=nested[0])], source_uri)
        document: Any = raw
        text = None
        content = json.dumps(raw, sort_keys=True).encode()
    else:
        content = raw if isinstance(raw, bytes) else raw.encode()
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ManifestError([Problem(location="manifest", message=f"not UTF-8 text: {err}")], source_uri) from err
        document = None
        if text.lstrip().startswith(("{", "[")):
            try:
                parsed_json = read_json(text, root="manifest")
            except DocumentError as err:
                raise ManifestError([Problem(location="manifest", message=str(err))], source_uri) from err
            document = parsed_json.value
            for path, message in parsed_json.problems:  # keys given twice: listed with every other problem
                problems.add(path, None, message)
    fmt = _detect(document, text, source_uri)
    if fmt is None:
        raise ManifestError(
            [
                Problem(
                    location="manifest",
                    message="unrecognised format: expected a JSON object with "
                    "'flowcellSamples' or 'samples', or a CSV samplesheet with a 'sample' column",
                )
            ],
            source_uri,
        )
    if fmt == "reference":
        parsed = _parse_reference(document, options, problems)
    elif fmt == "native":
        parsed = _parse_native(document, options, problems)
    else:
        assert text is not None
        parsed = _parse_samplesheet(text, options, problems)
    samples = parsed.get("samples", [])
    prefixes = _allowed_prefixes(options, problems)
    _common_checks(samples, parsed.get("ids", []), prefixes, options, problems)

    flowcell_id = _flowcell_id(options, parsed.get("flowcell_id"), source_uri, problems)
    defaults = {**parsed.get("defaults", {}), **options.run_defaults}
    if options.role_arn:
        defaults["role_arn"] = options.role_arn
    if not defaults.get("role_arn"):
        problems.add("manifest", "role_arn", "no run role: give the role_arn parameter or run_defaults.role_arn")
    elif not isinstance(defaults["role_arn"], str) or not ROLE_ARN.fullmatch(defaults["role_arn"]):
        problems.add("manifest", "role_arn", f"not an IAM role ARN: {shown(defaults['role_arn'])}")
    notification = {**parsed.get("notification", {})}
    if options.sns_topic_arn:
        notification["sns_topic_arn"] = options.sns_topic_arn
    if options.report_uri:
        notification["report_uri"] = options.report_uri
    where = "params" if options.report_uri else "notification"
    problems.s3_uri(notification.get("report_uri"), where, "report_uri")
    _check_allowed(notification.get("report_uri"), prefixes, options, where, "report_uri", problems)
    topic = notification.get("sns_topic_arn")
    if topic is not None and (not isinstance(topic, str) or not SNS_TOPIC_ARN.fullmatch(topic)):
        where = "params" if options.sns_topic_arn else "notification"
        problems.add(where, "sns_topic_arn", f"not an SNS topic ARN: {shown(topic)}")
    for stage in parsed.get("stages", [])[1:]:  # the first stage's output is the samples' (checked with them)
        _check_allowed(stage.get("output_uri"), prefixes, options, stage["location"], "run.output_uri", problems)
    qc = parsed.get("qc")
    if qc is not None:
        _check_allowed(qc.get("output_uri"), prefixes, options, "qc", "output_uri", problems)
        if options.qc_min_completed_fraction is not None:
            qc.setdefault("policy", {})["min_completed_fraction"] = options.qc_min_completed_fraction
    if problems.problems:
        raise ManifestError(problems.problems, source_uri)
    try:
        return FlowcellManifest(
            flowcell_id=str(flowcell_id),
            source_format=fmt,
            source_uri=source_uri,
            sha256=hashlib.sha256(content).hexdigest(),
            defaults=RunDefaults(**defaults),
            samples=[Sample(**{k: v for k, v in s.items() if k != "location" and v is not None}) for s in samples],
            stages=[
                Stage(**{k: v for k, v in s.items() if k != "location" and v is not None})
                for s in parsed.get("stages", [])
            ],
            qc=QcSpec(**{**qc, "policy": QcPolicy(**qc.get("policy", {}))}) if qc else None,
            notification=Notification(**notification),
        )
    except ValidationError as err:
        raise ManifestError(
            [
                Problem(location=".".join(str(p) for p in e["loc"]) or "manifest", message=str(e["msg"]))
                for e in err.errors()
            ],
            source_uri,
        ) from err
