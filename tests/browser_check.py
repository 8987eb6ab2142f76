"""Drives headless Chromium against a running `pipec ui`, inside the browser tool environment
(.venvs/browser: Playwright only, never pipec).

    python tests/browser_check.py < PLAN_JSON

PLAN_JSON: {"base": URL, "done": RUN_ID, "failed": RUN_ID, "live": RUN_ID, "gate": PATH,
"downloads": DIR, "screenshots": DIR or null}. It visits the pages as a person would and prints
one JSON object of what it saw (the test decides what is right). Chromium is Debian's
(/usr/bin/chromium): Playwright's own browser download is not used. Any JavaScript dialog is
recorded (an injected `alert` shows up there), and so is any script error on a page.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 60_000  # generous: a slow CI machine, not a timing assertion


def steps_in_svg(page: Page) -> dict[str, str]:
    """SVG node id -> its class, for every step node of the DAG on the page."""
    found: dict[str, str] = page.eval_on_selector_all(
        "#graph svg g.node.step",
        "nodes => Object.fromEntries(nodes.map(n => [n.id, n.getAttribute('class')]))",
    )
    return found


def main() -> None:
    plan: dict[str, Any] = json.load(sys.stdin)
    base: str = plan["base"]
    shots = Path(plan["screenshots"]) if plan.get("screenshots") else None
    seen: dict[str, Any] = {"dialogs": [], "page_errors": []}
    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(accept_downloads=True, viewport={"width": 1200, "height": 900})
        page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))

        page.goto(base + "/")
        seen["runs_rows"] = page.locator("#runs tbody tr").count()
        page.select_option("select[name=status]", "failed")
        page.click("#filters button")
        page.wait_for_load_state()
        seen["failed_filter_url"] = page.url
        seen["failed_rows"] = page.locator("#runs tbody tr td:first-child").all_inner_texts()
        if shots:
            page.goto(base + "/")
            page.screenshot(path=str(shots / "ui-runs.png"), full_page=True)

        page.goto(f"{base}/runs/{plan['done']}")
        seen["done_steps"] = steps_in_svg(page)
        seen["params_text"] = page.locator("#params").inner_text()
        seen["injected_imgs"] = page.locator("img[src=x]").count()
        if shots:
            page.screenshot(path=str(shots / "ui-run.png"), full_page=True)

        page.goto(f"{base}/runs/{plan['failed']}")
        seen["failed_steps"] = steps_in_svg(page)
        seen["failed_table"] = page.locator("#steps").inner_text()

        page.goto(f"{base}/runs/{plan['done']}")
        page.click("#steps a:text-is('make')")
        page.wait_for_load_state()
        seen["log"] = page.locator("#log").inner_text()
        seen["value"] = page.locator("section.output .value").first.inner_text()
        seen["injected_scripts"] = page.locator("#log script").count()
        if shots:
            page.screenshot(path=str(shots / "ui-step.png"), full_page=True)

        page.goto(f"{base}/runs/{plan['done']}/steps/picture")
        seen["images"] = page.eval_on_selector_all(
            "section.output img", "imgs => imgs.map(i => i.naturalWidth)"
        )
        with page.expect_download() as waiting:
            page.click("ul.files a:text-is('data/out_dir/notes.txt')")
        download = waiting.value
        target = Path(plan["downloads"]) / download.suggested_filename
        download.save_as(str(target))
        seen["download"] = {"name": download.suggested_filename, "text": target.read_text()}

        page.goto(f"{base}/runs/{plan['live']}")
        seen["live_before"] = steps_in_svg(page)
        seen["live_refreshes"] = page.locator("meta[http-equiv=refresh]").count()
        Path(plan["gate"]).touch()  # let the step finish; the page must follow by itself
        page.wait_for_selector("#graph svg g.node.step.succeeded", timeout=WAIT_MS)
        seen["live_after"] = steps_in_svg(page)
        browser.close()
    json.dump(seen, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
