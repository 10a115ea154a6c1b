"""What a person does in the Airflow 3 UI, as Playwright steps in headless Chromium.

One place for the browser: ``tests/integration/test_browser.py`` and
``python -m healthomics_demo.screenshots`` both log in, trigger a DAG through its Params form
and look at the mapped tasks with these helpers. Chromium is Debian's package (no download):
``make browser`` installs it when missing.

Selectors are what a person sees (roles, labels, texts), found by trying them on Airflow 3.3.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from playwright.sync_api import Locator, Page, sync_playwright

# No network on these machines: without these flags Chromium waits on updates, sync and the like.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1600, "height": 900}
# Generous: the UI answers slowly while the machine runs Airflow and benchmarks on two cores.
TIMEOUT_MS = 60_000


def find_chromium() -> str | None:
    """The system Chromium (Debian's ``chromium`` package), or None when it is not installed."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@contextlib.contextmanager
def browser_page(chromium: str) -> Iterator[Page]:
    """A page of a fresh headless Chromium (closed afterwards), sized for the docs' screenshots."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def log_in(page: Page, base_url: str, username: str, password: str, path: str = "/") -> None:
    """Open ``path``, get sent to the login page, sign in, and land back on ``path``."""
    page.goto(f"{base_url}{path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


def param_field(dialog: Locator, title: str) -> Locator:
    """The input of the Params form field titled ``title`` (the Param's ``title``).

    The form's labels point (``for``) at ids their inputs do not have, so a label does not
    name its input; the field is the group holding the label, and the input is inside it.
    """
    label = dialog.page.locator("label").get_by_text(title, exact=True)
    return dialog.get_by_role("group").filter(has=label).locator("input:not([type=hidden]), textarea").first


def trigger_with_form(
    page: Page,
    base_url: str,
    dag_id: str,
    fields: Mapping[str, str],
    run_id: str | None = None,
    screenshot: Path | None = None,
) -> str:
    """Trigger ``dag_id`` from its page: Trigger, fill the Params form, submit. Returns the run id.

    :param fields: field title -> text to type, e.g. ``{"Manifest in S3": "s3://..."}``.
    :param run_id: typed into Advanced Options > Run ID (default: Airflow names the run).
    :param screenshot: where to save the filled-in form, before it is submitted.
    """
    page.goto(f"{base_url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    heading = dialog.get_by_text(f"Trigger Dag - {dag_id}")
    heading.wait_for()
    for title, value in fields.items():
        param_field(dialog, title).fill(value)
    if screenshot:
        heading.scroll_into_view_if_needed()  # the form's top: Logical Date, the first params
        save(page, screenshot)
    if run_id:
        # Opening Advanced Options folds the params away: after the screenshot.
        dialog.get_by_role("button", name="Advanced Options").click()
        dialog.get_by_label("Run ID").fill(run_id)
    # The run id is in the answer to the form's POST (the page then moves to the new run).
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(f"/api/v2/dags/{dag_id}/dagRuns")
    ) as answer:
        dialog.get_by_role("button", name="Trigger", exact=True).click()
    response = answer.value
    if not response.ok:
        raise RuntimeError(f"the Trigger form was refused: {response.status} {response.text()[:2000]}")
    return str(response.json()["dag_run_id"])


def show_mapped_tasks(page: Page, base_url: str, dag_id: str, run_id: str, task_id: str, expect: str) -> None:
    """Open the mapped task instances of ``task_id`` in the run; wait until ``expect`` (a map index) shows."""
    page.goto(f"{base_url}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mapped")
    page.get_by_role("link", name=expect, exact=True).wait_for()


def row_of(page: Page, name: str) -> Locator:
    """The table row of a rendered map index (its state, dates, try number...)."""
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))


def show_run(page: Page, base_url: str, dag_id: str, run_id: str, expect: str) -> None:
    """Open a DAG run (its grid and task instances); wait until ``expect`` (a text) shows."""
    page.goto(f"{base_url}/dags/{dag_id}/runs/{run_id}")
    page.get_by_text(expect, exact=True).first.wait_for()


def save(page: Page, path: Path) -> None:
    """Screenshot the viewport into ``path`` once the page has drawn."""
    page.wait_for_timeout(1500)  # charts and tables finish drawing after their data arrived
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    print(f"saved {path}")
