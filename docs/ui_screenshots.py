"""Screenshots of the MLflow UI over a store made by a short sweep and its fits, taken in a real browser.

    python docs/ui_screenshots.py [--store DIR]   # writes docs/ui/*.png (about 3 minutes on 2 cores)

Runs a small sweep (tiny embedded base, ranks 1/4/16 x seeds 0/1, 30 steps) into a temporary
folder and fits two laws to it, starts `forgetlab ui` there on a free loopback port, and drives
Debian's Chromium with Playwright's Python package pointed at the system browser (no download):
    apt-get install chromium && pip install playwright
Each picture is taken in a fresh browser profile, as a newcomer sees the page: forgetlab's app
plugin gives it model-training mode and forgetlab's view. The script waits for the elements it
shows; the UI draws its charts after their data arrives, so a picture with charts also waits a
few seconds once they are there. `--store DIR` keeps the store in DIR and reuses it.
Pictures: the runs table as `forgetlab ui` opens it, the sweep's forgetting charts, the fits side
by side, the sweep's run linking its fits, one run's curves.
"""

from __future__ import annotations

import os
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
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WAIT_MS = 120_000
DRAWN_SECONDS = 4  # after a chart's frame is there, its lines are drawn (plotly) from data already fetched
SWEEP = f"""name: screenshots
base: {REPO / "lightning_configs" / "r4.yaml"}
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


def forgetlab(folder: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "forgetlab", *args], cwd=folder)
    if done.returncode:
        sys.exit(f"forgetlab {' '.join(args)} failed (exit {done.returncode})")


def make_store(folder: Path) -> None:
    """The sweep, then two laws fitted to all of its steps (30 steps: the default cut N > 50 keeps none)."""
    (folder / "sweep.yaml").write_text(SWEEP)
    forgetlab(folder, "sweep", "--config", "sweep.yaml", "--jobs", "2")
    for law in ("linear", "linear-rank"):
        forgetlab(folder, "fit", "--law", law, "--param", "min_step=0", "-B", "200")


def start_ui(folder: Path) -> tuple[subprocess.Popen, str]:
    """`forgetlab ui` on a free port; returns it and the runs address it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "forgetlab", "ui", "--port", str(free_port())],
        cwd=folder,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    for line in process.stdout:
        print(line, end="")
        if line.startswith("runs of"):
            return process, line.split(": ", 1)[1].strip()
    sys.exit("forgetlab ui stopped before printing the runs address")


def shoot(page, name: str, drawn: bool = False) -> None:
    if drawn:
        time.sleep(DRAWN_SECONDS)
    page.mouse.move(1, 450)  # no hover toolbar over a chart
    page.screenshot(path=str(OUT / name))
    print(f"wrote {OUT / name}")


def _view_mode(page, mode: str) -> None:
    """The runs page's table | chart | evaluation switch (hidden radio inputs inside labels)."""
    page.locator("label").filter(has=page.locator(f'input[value="{mode}"]')).first.click()


def take_screenshots(address: str) -> None:
    from playwright.sync_api import sync_playwright

    base, runs = address.split("/#/", 1)
    experiment = runs.split("/")[1]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)

        def fresh_page(height: int = 900):
            context = browser.new_context(viewport={"width": 1600, "height": height})
            context.set_default_timeout(WAIT_MS)
            return context.new_page()

        page = fresh_page(height=1300)  # both rows of the forgetting charts
        page.goto(address)
        page.get_by_role("columnheader", name="forget_hard", exact=True).first.wait_for()
        page.set_viewport_size({"width": 1600, "height": 900})
        shoot(page, "runs-table.png")
        page.set_viewport_size({"width": 1600, "height": 1300})
        _view_mode(page, "CHART")
        page.get_by_text("Parallel Coordinates").first.wait_for()
        shoot(page, "sweep-charts.png", drawn=True)
        page.context.close()

        page = fresh_page()
        page.goto(f"{base}/#/experiments")
        page.get_by_role("link", name="forgetlab-fits", exact=True).click()
        page.get_by_role("columnheader", name="fit/c", exact=True).first.wait_for()
        shoot(page, "fits-table.png")
        page.context.close()

        page = fresh_page()
        page.goto(address)
        page.get_by_role("link", name="screenshots", exact=True).click()
        page.get_by_text("Fits of this sweep").wait_for()
        page.get_by_role("link", name="embedded-tiny-r4-code-s0", exact=True).wait_for()  # its child runs
        shoot(page, "sweep-run.png")
        page.context.close()

        page = fresh_page()
        page.goto(f"{base}/#/experiments/{experiment}/runs")
        page.get_by_role("link", name="embedded-tiny-r4-code-s0", exact=True).click()
        page.get_by_role("tab", name="Model metrics").click()
        page.get_by_text("forget_hard", exact=True).first.wait_for()
        shoot(page, "run-curves.png", drawn=True)
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
