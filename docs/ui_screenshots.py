"""Screenshots of the MLflow UI over a store made by a short sweep, taken in a real browser.

    python docs/ui_screenshots.py [--store DIR]   # writes docs/ui/*.png (about 5 minutes on 2 cores)

Runs a small sweep (tiny embedded base, ranks 1/4/16 x seeds 0/1, 30 steps) into a temporary
folder, starts `forgetlab ui` there on a free loopback port, and drives Debian's Chromium with
Playwright's Python package pointed at the system browser (no browser download):
    apt-get install chromium && pip install playwright
The MLflow UI polls, so each page is given a fixed time to settle instead of "network idle".
`--store DIR` keeps the store in DIR and reuses it when it is there already.
Pictures: the runs table as `forgetlab ui` opens it, the chart comparison of the sweep, and one
run's curves.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "ui"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SETTLE_SECONDS = 12
SWEEP = f"""name: screenshots
base: {REPO / 'lightning_configs' / 'r4.yaml'}
overrides:
  model.name: embedded-tiny
  train.steps: 30
  train.eval_every: 5
  train.batch_size: 4
  train.context_length: 32
  train.ft_eval_sequences: 4
  forget.num_sequences: 4
  forget.batch_size: 4
grid:
  lora.rank: [1, 4, 16]
  seed: [0, 1]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_store(folder: Path) -> None:
    (folder / "sweep.yaml").write_text(SWEEP)
    done = subprocess.run([sys.executable, "-m", "forgetlab", "sweep", "--config", "sweep.yaml", "--jobs", "2"], cwd=folder)
    if done.returncode:
        sys.exit(f"the sweep failed (exit {done.returncode})")


def start_ui(folder: Path) -> tuple[subprocess.Popen, str]:
    """`forgetlab ui` on a free port; returns it and the runs address it prints."""
    process = subprocess.Popen([sys.executable, "-m", "forgetlab", "ui", "--port", str(free_port())], cwd=folder,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    for line in process.stdout:
        print(line, end="")
        if line.startswith("runs of"):
            return process, line.split(": ", 1)[1].strip()
    sys.exit("forgetlab ui stopped before printing the runs address")


def shoot(page, name: str) -> None:
    time.sleep(SETTLE_SECONDS)
    page.mouse.move(1, 450)  # no hover toolbar over a chart
    page.screenshot(path=str(OUT / name))
    print(f"wrote {OUT / name}")


def _tidy(page) -> None:
    """Close what covers the runs: the assistant side panel and the shared-view banner."""
    for name in ("Close", "Hide banner"):
        button = page.get_by_role("button", name=name, exact=True)
        if button.count():
            button.first.click()


def _expand_sweep(page, sweep: str) -> None:
    """Open the sweep's parent row, so its points show nested under it."""
    row = page.get_by_role("row").filter(has_text=sweep)
    buttons = row.first.get_by_role("button")
    print(f"parent row buttons: {[buttons.nth(i).get_attribute('aria-label') for i in range(buttons.count())]}")
    if buttons.count():
        buttons.last.click()


def _view_mode(page, mode: str) -> None:
    """The runs page's table | chart | evaluation switch (hidden radio inputs inside labels)."""
    page.locator("label").filter(has=page.locator(f'input[value="{mode}"]')).first.click()


def take_screenshots(address: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(address)
        time.sleep(SETTLE_SECONDS)
        _tidy(page)
        _expand_sweep(page, "screenshots")
        shoot(page, "runs-table.png")
        _view_mode(page, "CHART")
        shoot(page, "sweep-charts.png")
        _view_mode(page, "TABLE")
        time.sleep(2)
        page.get_by_role("link", name="embedded-tiny-r4-code-s0", exact=True).first.click()
        time.sleep(2)
        # Keep the training view: without workflowType the run page falls back to the GenAI one.
        page.goto(page.url.split("?")[0].rstrip("/") + "/model-metrics?workflowType=machine_learning")
        shoot(page, "run-curves.png")
        browser.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="folder for the sweep's store (reused when it holds one)")
    store = parser.parse_args().store
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="forgetlab-ui-") as scratch:
        folder = store or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "mlruns" / "mlflow.db").exists():
            make_store(folder)
        process, address = start_ui(folder)
        try:
            take_screenshots(address)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
