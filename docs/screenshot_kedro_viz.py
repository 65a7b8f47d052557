"""Refresh ``docs/assets/kedro-viz.png``: both pipelines as kedro-viz draws them.

Run it from the project root after a pipeline changes (about 30 s)::

    python docs/screenshot_kedro_viz.py

It starts ``kedro viz run`` on 127.0.0.1 (as ``tests/test_viz.py`` does), opens it in Debian's
headless Chromium through its chromedriver (``apt-get install -y chromium chromium-driver``),
closes kedro-viz's banner and feature tour, switches to the light theme, waits until every node
is drawn and saves the screenshot. Nothing is downloaded.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "assets" / "kedro-viz.png"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
START_TIMEOUT_S = 180


def wait_for(url: str, process: subprocess.Popen) -> None:
    """Return once ``url`` answers; fail if the server exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"kedro viz run exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise SystemExit(f"kedro viz run did not answer within {START_TIMEOUT_S} s")


def screenshot(url: str, output: Path, profile: Path) -> None:
    """Draw ``url`` in headless Chromium, tidy the view and save it to ``output``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1400,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        with urllib.request.urlopen(f"{url}/api/main", timeout=30) as response:
            shown = [n for n in json.load(response)["nodes"] if n["type"] in ("task", "data")]
        driver.get(url)
        WebDriverWait(driver, 90).until(  # every node and dataset drawn
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".pipeline-node__text")) >= len(shown)
        )
        time.sleep(2)  # let the layout settle
        for xpath in (
            "//button[normalize-space()='Dismiss']",
            "//*[contains(@class,'feature-hints__close')]",
            "//button[@aria-label='Change to light theme']",
        ):
            for element in driver.find_elements(By.XPATH, xpath):
                if element.is_displayed():
                    element.click()
                    time.sleep(1)
        driver.execute_script(
            "document.querySelectorAll('.feature-hints, .feature-hints__highlightDot')"
            ".forEach(e => e.remove())"
        )
        body = driver.find_element(By.TAG_NAME, "body")  # the pointer off the buttons: no tooltip
        ActionChains(driver).move_to_element_with_offset(body, -200, -400).perform()
        time.sleep(1)
        output.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(output)):
            raise SystemExit(f"Chromium could not save {output}")
        print(f"wrote {output}: {len(shown)} nodes and datasets")
    finally:
        driver.quit()


def main() -> None:
    """Start kedro-viz, take the screenshot, stop kedro-viz."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=41414)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    command = [sys.executable, "-m", "kedro", "viz", "run", "--host", "127.0.0.1"]
    command += ["--port", str(args.port), "--no-browser"]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        ["timeout", "600", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill below reaches its workers
    )
    try:
        wait_for(f"{url}/api/main", process)
        with tempfile.TemporaryDirectory(prefix="kedro-viz-profile-") as profile:
            screenshot(url, args.output, Path(profile))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
