"""A person at the Airflow UI of ``make up``: log in, trigger a flowcell with the form, see its samples.

Headless Chromium (Debian's package, driven by Playwright) against what ``make up`` starts: the
local stack with the demo flowcell (twelve samples, NA12885 made to fail) and a local Airflow
with a login. The form gets only the manifest and the QC policy; the run role and the SNS topic
come from the Variables ``make up`` sets. With ``HEALTHOMICS_SCREENSHOTS_DIR=docs/images`` the
test also refreshes the pictures in docs/images.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from healthomics_demo import browser
from healthomics_demo.__main__ import FAILING_SAMPLE, SAMPLES
from healthomics_demo.screenshots import MAPPED_SAMPLES, RUN_GRID, RUN_ID, TRIGGER_FORM
from healthomics_demo.up import DAG_ID, QC_POLICY, LocalUI, local_ui

CHROMIUM = browser.find_chromium()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium (/usr/bin/chromium): `make browser` installs Debian's package"
    ),
    pytest.mark.timeout(900),
]


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUI]:
    """What ``make up`` runs, on free ports; stopped after the module."""
    with local_ui(tmp_path_factory.mktemp("up"), password=secrets.token_urlsafe(9), port=0) as running:
        yield running


@pytest.fixture
def page() -> Iterator[Page]:
    assert CHROMIUM is not None
    with browser.browser_page(CHROMIUM) as opened:
        yield opened


def test_a_person_logs_in_triggers_a_flowcell_with_the_form_and_sees_its_samples(
    ui: LocalUI, page: Page, tmp_path: Path
) -> None:
    # No way in without the login: the REST API refuses a caller without a token.
    assert page.request.get(f"{ui.url}/api/v2/dags").status == 401

    browser.log_in(page, ui.url, ui.username, ui.password, path=f"/dags/{DAG_ID}")
    assert page.url == f"{ui.url}/dags/{DAG_ID}"

    # The run id the docs' pictures show, typed into the form's Advanced Options.
    run_id = browser.trigger_with_form(page, ui.url, DAG_ID, ui.form, run_id=RUN_ID, screenshot=tmp_path / TRIGGER_FORM)
    assert run_id == RUN_ID
    run = ui.airflow.dag_run(DAG_ID, run_id)
    # The form's values, by the logged-in user, and nothing typed where the Variables apply.
    assert (run["triggered_by"], run["triggering_user_name"]) == ("ui", ui.username)
    assert run["conf"]["manifest_uri"] == ui.manifest_uri
    assert run["conf"]["qc_min_completed_fraction"] == float(QC_POLICY)
    assert run["conf"]["role_arn"] is None and run["conf"]["sns_topic_arn"] is None

    # NA12885 fails by design: the flowcell fails, every other sample succeeds, QC runs on those.
    assert ui.airflow.wait_for_dag_run(DAG_ID, run_id, timeout=600)["state"] == "failed"
    instances = ui.airflow.task_instances(DAG_ID, run_id)
    samples = {ti["rendered_map_index"]: ti["state"] for ti in instances if ti["task_id"] == "sample"}
    assert samples == {sample: "failed" if sample == FAILING_SAMPLE else "success" for sample in SAMPLES}
    states = {ti["task_id"]: ti["state"] for ti in instances if ti["map_index"] < 0}
    assert (states["qc"], states["notify"], states["flowcell_outcome"]) == ("success", "success", "failed")

    # The run's grid, then its mapped sample tasks: one row per sample, under its sample id.
    browser.show_run(page, ui.url, DAG_ID, run_id, expect="flowcell_outcome")
    browser.save(page, tmp_path / RUN_GRID)
    browser.show_mapped_tasks(page, ui.url, DAG_ID, run_id, "sample", expect=FAILING_SAMPLE)
    for sample in SAMPLES:
        assert browser.row_of(page, sample).is_visible(), sample
    assert "Failed" in browser.row_of(page, FAILING_SAMPLE).inner_text()
    assert "Success" in browser.row_of(page, SAMPLES[0]).inner_text()
    browser.save(page, tmp_path / MAPPED_SAMPLES)

    if out := os.environ.get("HEALTHOMICS_SCREENSHOTS_DIR"):
        Path(out).mkdir(parents=True, exist_ok=True)
        for picture in (TRIGGER_FORM, RUN_GRID, MAPPED_SAMPLES):
            shutil.copy(tmp_path / picture, Path(out) / picture)
