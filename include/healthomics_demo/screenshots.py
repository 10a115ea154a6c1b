"""``python -m healthomics_demo.screenshots``: the docs' screenshots from a real run in a local Airflow.

Starts what ``make up`` starts (the local stack with the demo flowcell, a local Airflow with a
login), then, in headless Chromium (the system package, driven by Playwright), logs in,
triggers ``healthomics_flowcell`` through its Trigger form, waits for the run, and captures the
filled-in form, the mapped sample tasks and the run's grid. ``tests/integration/test_browser.py``
takes the same steps (and the same pictures, with ``HEALTHOMICS_SCREENSHOTS_DIR``).

``--timeline`` instead runs the flowcell (no browser) and keeps the report's timeline picture. Its
clock is the emulator's, at 300 emulated seconds a second: slow enough that the seconds Airflow
takes between a sample's end and QC's start do not dwarf the runs' hours.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

from healthomics_demo import browser
from healthomics_demo.__main__ import BUCKET, FAILING_SAMPLE, FLOWCELL, REPO
from healthomics_demo.up import DAG_ID, local_ui

# The pictures of docs/flowcell.md and docs/ui.md, by what they show.
TRIGGER_FORM = "flowcell-trigger-form.png"
MAPPED_SAMPLES = "flowcell-mapped-samples.png"
RUN_GRID = "flowcell-run-grid.png"
TIMELINE = "flowcell-timeline.png"
TIMELINE_TIME_SCALE = 300
# A run id that reads well in the pictures' breadcrumbs.
RUN_ID = f"{FLOWCELL}__ui"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthomics_demo.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--chromium", default=browser.find_chromium())
    parser.add_argument("--timeline", action="store_true", help="only the report's timeline picture, no browser")
    args = parser.parse_args(argv)
    if args.timeline:
        return save_timeline(args.out / TIMELINE)
    if not args.chromium:
        parser.error("no Chromium: install Debian's package (make browser) or give --chromium")
    work = Path(tempfile.mkdtemp(prefix="healthomics-screens-"))
    with local_ui(work, password=secrets.token_urlsafe(9)) as ui, browser.browser_page(args.chromium) as page:
        browser.log_in(page, ui.url, ui.username, ui.password)
        run_id = browser.trigger_with_form(
            page, ui.url, DAG_ID, ui.form, run_id=RUN_ID, screenshot=args.out / TRIGGER_FORM
        )
        ui.airflow.wait_for_dag_run(DAG_ID, run_id, timeout=600)
        browser.show_mapped_tasks(page, ui.url, DAG_ID, run_id, "sample", expect=FAILING_SAMPLE)
        browser.save(page, args.out / MAPPED_SAMPLES)
        browser.show_run(page, ui.url, DAG_ID, run_id, expect="flowcell_outcome")
        browser.save(page, args.out / RUN_GRID)
    return 0


def save_timeline(path: Path) -> int:
    """Run the demo flowcell in a local Airflow and keep the timeline.png its report wrote."""
    work = Path(tempfile.mkdtemp(prefix="healthomics-timeline-"))
    with local_ui(work, password=secrets.token_urlsafe(9), time_scale=TIMELINE_TIME_SCALE) as ui:
        run_id = ui.airflow.trigger(DAG_ID, conf=ui.conf)
        ui.airflow.wait_for_dag_run(DAG_ID, run_id, timeout=1800)
        s3 = ui.stack.client("s3")
        listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        keys = [o["Key"] for o in listed if o["Key"].endswith("/timeline.png")]
        if not keys:
            print("the flowcell wrote no timeline.png (is matplotlib installed?)", file=sys.stderr)
            return 1
        path.write_bytes(s3.get_object(Bucket=BUCKET, Key=keys[-1])["Body"].read())
        print(f"{path} (from s3://{BUCKET}/{keys[-1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
