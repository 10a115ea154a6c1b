"""``python -m healthomics_demo.screenshots``: README screenshots from a real run in a local Airflow.

Starts the local stack and a local Airflow (api-server, scheduler, dag-processor, triggerer),
triggers ``healthomics_flowcell`` through the REST API with the demo flowcell, waits for the run,
and captures the Trigger form, the DAG run's grid and its mapped sample tasks with headless
Chromium (the system package, driven by Playwright).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from healthomics_demo.__main__ import REPO, prepare
from local_airflow import LocalAirflow
from local_aws import LocalAWS

DAG_ID = "healthomics_flowcell"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def capture(page: Page, url: str, path: Path, wait_for: str | None = None) -> None:
    page.goto(url, wait_until="networkidle")
    if wait_for:
        page.get_by_text(wait_for).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # let the grid finish drawing
    page.screenshot(path=str(path), full_page=False)
    print(f"saved {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthomics_demo.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="healthomics-screens-"))
    with LocalAWS(workdir=work / "stack", time_scale=3600) as stack:
        setup = prepare(stack)
        env = {**stack.env(), "HEALTHOMICS_POLL_SECONDS": "2"}
        with LocalAirflow(workdir=work / "airflow", dags_folder=REPO / "dags", env=env) as airflow:
            airflow.unpause(DAG_ID)
            run_id = airflow.trigger(DAG_ID, conf=setup["conf"], run_id="FC-DEMO-0001__manual")
            airflow.wait_for_dag_run(DAG_ID, run_id, timeout=600)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                base = f"{airflow.url}/dags/{DAG_ID}"
                capture(
                    page,
                    f"{base}/runs/{run_id}/tasks/sample/mapped",
                    args.out / "flowcell-mapped-samples.png",
                    wait_for="NA12885",
                )
                capture(page, f"{base}/runs/{run_id}", args.out / "flowcell-run-grid.png")
                page.goto(f"{base}", wait_until="networkidle")
                page.get_by_role("button", name="Trigger").first.click()
                page.wait_for_timeout(2000)
                page.screenshot(path=str(args.out / "flowcell-trigger-form.png"))
                print(f"saved {args.out / 'flowcell-trigger-form.png'}")
                browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
