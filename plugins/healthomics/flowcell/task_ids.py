"""The names of the flowcell DAG's tasks and XComs, shared by the DAG file and the tasks that read each other."""

LOAD_TASK = "load_manifest"
ENTRIES_TASK = "sample_entries"
SAMPLE_TASK = "sample"
# healthomics_pipeline: a mapped task group per sample holding one task per stage, in stage order.
PIPELINE_GROUP = "sample"
QC_GATE_TASK = "qc_gate"
QC_TASK = "qc"
NOTIFY_TASK = "notify"
# The asset alias a flowcell's notification adds an event to per output location (flowcell id,
# status and report in its extra): schedule a DAG on it to run after every flowcell.
OUTPUTS_ASSET_ALIAS = "healthomics_flowcell_outputs"
COSTS_TASK = "costs"  # what each sample's runs cost, for the report (beside QC, after every sample)

START_REQUESTS_XCOM = "start_requests"  # sample id -> StartRun request, for a sample task that starts a run
FAILURE_XCOM = "failure"  # a sample task's failure (status, reason, message), for the QC gate and report
POLICY_XCOM = "policy"  # the QC gate's explanation of its decision
PROBLEMS_XCOM = "problems"  # an invalid manifest's problems, for the report
PIPELINE_XCOM = "pipeline"  # the stages and run defaults, for the stage tasks after the first
STAGE_INPUTS_XCOM = "stage_inputs"  # sample id -> its template fields, tags and idempotency key, in parts:
# each part holds the samples of STAGE_INPUTS_PER_XCOM consecutive map indexes, so a stage task reads
# its own part and not the whole flowcell (that made every stage task's read O(N), O(N^2) in all).
STAGE_INPUTS_PER_XCOM = 100


def stage_inputs_xcom(map_index: int) -> str:
    """The XCom (of the entries task) holding the stage inputs of the sample at ``map_index``."""
    return f"{STAGE_INPUTS_XCOM}-{map_index // STAGE_INPUTS_PER_XCOM}"


def stage_task_id(number: int) -> str:
    """The task of a sample's ``number``-th stage (1-based) in healthomics_pipeline."""
    return f"{PIPELINE_GROUP}.stage_{number}"
