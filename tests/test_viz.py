"""kedro-viz on the project: the server in headless Chromium, its REST API, the static build.

The browser test drives Debian's Chromium through its matching chromedriver (selenium, no
driver download). Install them with ``apt-get install -y chromium chromium-driver``. It also
takes the screenshot of both pipelines that the docs show (``docs/assets/kedro-viz.png``), into
a temporary folder so that a test run leaves the tree clean; after a pipeline changes, refresh
the tracked file with ``ED_UPDATE_SCREENSHOT=1 python -m pytest tests/test_viz.py -k chromium``.
"""

import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from embedding_distillation.pipelines.distillation.pipeline import (
    create_pipeline as distillation_pipeline,
)
from embedding_distillation.pipelines.teacher_embeddings.pipeline import (
    create_pipeline as teacher_embeddings_pipeline,
)
from tests.conftest import ROOT, kedro_env, run_kedro

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = "apt-get update && apt-get install -y chromium chromium-driver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,1000",
)
SERVER_START_TIMEOUT_S = 120
# The screenshot the docs show (docs/pipelines.md): light theme, sidebar and minimap closed, in a
# window tall enough for kedro-viz's zoom-to-fit to keep every label readable.
SCREENSHOT = ROOT / "docs" / "assets" / "kedro-viz.png"
SCREENSHOT_WINDOW = (1400, 1600)
TIDY_VIEW = {
    "theme": "light",
    "showFeatureHints": False,
    "visible": {"sidebar": False, "miniMap": False},
}
PIPELINE_NODES = {
    "teacher_embeddings": sorted(node.name for node in teacher_embeddings_pipeline().nodes),
    "distillation": sorted(node.name for node in distillation_pipeline().nodes),
}
CATALOG_DATASETS = (
    "corpus",
    "selected_corpus",
    "teacher_embeddings",
    "teacher_embeddings_writer",
    "teacher_embeddings_hub",
    "teacher_embeddings_provenance",
    "training_metrics",
    "student_model",
    "student_exports",
    "sts_benchmark",
    "mteb_results",
    "distillation_metrics",
    "distillation_report",
    "training_curves_plot",
    "cosine_histogram_plot",
    "quality_speed_plot",
)
PLOTS = ("training_curves_plot", "cosine_histogram_plot", "quality_speed_plot")


@dataclass(frozen=True)
class VizServer:
    """A running ``kedro viz run``: its URL and node ids by name."""

    url: str
    node_ids: dict[str, str]

    def get_json(self, path: str, timeout: float = 30) -> dict:
        """GET ``path`` from the server's REST API."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as response:
            return json.load(response)


def _free_port() -> int:
    """A free port below 49152: kedro-viz refuses ports in the ephemeral range."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20000, 49000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("No free port between 20000 and 49000 on 127.0.0.1")


def _wait_for_server(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"kedro viz run exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/api/main", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(
        f"kedro viz run did not answer within {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def viz_server(tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VizServer]:
    """``kedro viz run`` on a free port of 127.0.0.1, stopped by its process group at the end."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("viz") / "kedro-viz.log"
    command = [sys.executable, "-m", "kedro", "viz", "run", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-browser"]
    with log.open("w") as out:
        # `timeout` ends the server even if this test process dies before the finally below.
        process = subprocess.Popen(
            ["timeout", "600", *command],
            cwd=tiny_project,
            env=kedro_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill below reaches its workers
        )
    try:
        _wait_for_server(url, process, log)
        with urllib.request.urlopen(f"{url}/api/main", timeout=30) as response:
            main = json.load(response)
        yield VizServer(url=url, node_ids={node["name"]: node["id"] for node in main["nodes"]})
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (SIGKILL if it lingers)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # already gone
            return
        try:
            process.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


def _chromium(profile: Path):
    """Headless Debian Chromium through its chromedriver, with a fresh profile."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail(
            f"The browser test needs Debian's Chromium at {CHROMIUM} and its driver at "
            f"{CHROMEDRIVER}; install them with: {INSTALL_HINT}"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: selenium-manager never runs, nothing is downloaded.
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


def _node_labels(driver, expected: set[str]) -> set[str]:
    """The labels of the drawn flowchart nodes, once ``expected`` are among them (60 s at most)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    found: set[str] = set()

    def drawn(d) -> bool:
        nodes = d.find_elements(By.CSS_SELECTOR, ".pipeline-node__text")
        found.clear()
        found.update(node.get_attribute("textContent") for node in nodes)
        return expected <= found

    try:
        WebDriverWait(driver, 60).until(drawn)
    except TimeoutException:
        pytest.fail(f"kedro-viz did not draw {sorted(expected - found)}; it drew {sorted(found)}")
    return found


def _save_pipeline_screenshot(driver, url: str, expected: set[str], output: Path) -> None:
    """Both pipelines, tidied for the docs, saved to ``output``; every node inside the picture.

    kedro-viz reads its view settings from ``localStorage["KedroViz"]`` when it starts, so they
    are set on a page of the same origin that is not the app (the app rewrites them as it runs).
    """
    from selenium.webdriver.common.by import By

    driver.set_window_size(*SCREENSHOT_WINDOW)
    driver.get(f"{url}/api/main")
    driver.execute_script(
        "localStorage.setItem('KedroViz', arguments[0]);"
        "localStorage.setItem('KedroViz-banners', JSON.stringify({lite: false}));",
        json.dumps(TIDY_VIEW),
    )
    driver.get(url)
    _node_labels(driver, expected)
    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Dismiss']"):
        if button.is_displayed():  # the "new version" banner: offline, it names version None
            button.click()
    assert not driver.find_elements(By.CSS_SELECTOR, ".pipeline-sidebar--visible")
    time.sleep(2)  # zoom-to-fit animates
    width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    outside = driver.execute_script(
        "return [...document.querySelectorAll('.pipeline-node')].filter(n => {"
        " const r = n.getBoundingClientRect();"
        " return r.left < 0 || r.top < 0 || r.right > arguments[0] || r.bottom > arguments[1];"
        "}).map(n => n.textContent)",
        width,
        height,
    )
    assert outside == [], f"nodes outside the {width}x{height} picture: {outside}"
    partial = output.with_name(f".{output.name}.partial")
    assert driver.save_screenshot(str(partial))
    header = partial.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(header[16:20]), int.from_bytes(header[20:24])) == (width, height)
    partial.replace(output)  # the docs never see half a file
    print(f"kedro-viz screenshot: {output} ({width}x{height})")


@pytest.mark.slow
def test_both_pipelines_are_registered(viz_server):
    main = viz_server.get_json("/api/main")
    assert {p["id"] for p in main["pipelines"]} == {"__default__", *PIPELINE_NODES}
    names = set(viz_server.node_ids)
    for nodes in PIPELINE_NODES.values():
        assert set(nodes) <= names
    assert {*CATALOG_DATASETS, "params:distillation", "params:teacher_embeddings"} <= names


@pytest.mark.slow
def test_kedro_viz_in_headless_chromium(viz_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium(tmp_path / "chromium-profile")
    try:
        driver.get(viz_server.url)
        every_task = {name for names in PIPELINE_NODES.values() for name in names}
        _node_labels(driver, every_task | set(CATALOG_DATASETS))

        # Each pipeline on its own shows its nodes and not the other's.
        for pipeline, nodes in PIPELINE_NODES.items():
            driver.get(f"{viz_server.url}/?pid={pipeline}")
            labels = _node_labels(driver, set(nodes))
            others = {n for p, ns in PIPELINE_NODES.items() if p != pipeline for n in ns}
            assert not others & labels, pipeline

        # Selecting a plot shows its image; selecting the metrics shows their JSON.
        driver.get(
            f"{viz_server.url}/?pid=__default__&sid={viz_server.node_ids['training_curves_plot']}"
        )
        image = WebDriverWait(driver, 30).until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".pipeline-metadata__plot-image")
        )
        assert image.get_attribute("src").startswith("data:image/png;base64,iVBORw0KGgo")
        sid = viz_server.node_ids["distillation_metrics"]
        driver.get(f"{viz_server.url}/?pid=__default__&sid={sid}")
        WebDriverWait(driver, 30).until(
            lambda d: '"heldout_rows"' in d.find_element(By.CSS_SELECTOR, ".pipeline-metadata").text
        )
        driver.save_screenshot(str(tmp_path / "kedro-viz-metrics.png"))

        screenshot = tmp_path / SCREENSHOT.name
        _save_pipeline_screenshot(
            driver, viz_server.url, every_task | set(CATALOG_DATASETS), screenshot
        )
        assert screenshot.read_bytes().startswith(b"\x89PNG")
        if os.environ.get("ED_UPDATE_SCREENSHOT"):
            SCREENSHOT.write_bytes(screenshot.read_bytes())
    finally:
        driver.quit()


@pytest.mark.slow
def test_metrics_and_plots_have_previews_and_every_dataset_describes_quickly(viz_server):
    for name in ("distillation_metrics", *PLOTS):
        node = viz_server.get_json(f"/api/nodes/{viz_server.node_ids[name]}")
        if name in PLOTS:
            assert node["preview_type"] == "ImagePreview", name
            assert base64.b64decode(node["preview"])[:4] == b"\x89PNG", name
        else:
            assert node["preview_type"] == "JSONPreview"
            assert json.loads(node["preview"])["heldout_rows"] == 3
    # The metadata of every dataset (what a click in the UI fetches) comes back at once.
    main = viz_server.get_json("/api/main")
    for node in main["nodes"]:
        if node["type"] == "data":
            started = time.monotonic()
            viz_server.get_json(f"/api/nodes/{node['id']}", timeout=10)
            assert time.monotonic() - started < 10, node["name"]


@pytest.mark.slow
def test_the_teacher_embeddings_have_a_table_preview(viz_server):
    node = viz_server.get_json(f"/api/nodes/{viz_server.node_ids['teacher_embeddings']}")
    assert node["preview_type"] == "TablePreview"
    preview = node["preview"]
    assert preview["columns"][:3] == ["row_id", "text", "teacher_embedding_final norm"]
    assert [row[0] for row in preview["data"]] == [0, 1, 2, 3, 4]
    norms = [row[2] for row in preview["data"]]
    assert all(abs(norm - 1) < 1e-3 for norm in norms)  # the tiny teacher ends in Normalize


@pytest.mark.slow
def test_the_teacher_embeddings_pipeline_shows_encoding_and_pushing_as_nodes(viz_server):
    pipeline = viz_server.get_json("/api/pipelines/teacher_embeddings")
    names = {node["name"] for node in pipeline["nodes"]}
    assert {"select_corpus", "encode_corpus", "push_teacher_embeddings"} <= names
    assert {"teacher_embeddings_writer", "teacher_embeddings_hub"} <= names


@pytest.mark.slow
def test_kedro_viz_build_writes_a_static_site_with_previews(tiny_project_copy):
    result = run_kedro(tiny_project_copy, "viz", "build", "--include-previews", timeout=300)
    build = tiny_project_copy / "build"
    assert (build / "index.html").is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    main = json.loads((build / "api" / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} == {"__default__", *PIPELINE_NODES}
    for pipeline, nodes in PIPELINE_NODES.items():
        shown = {
            n["name"]
            for n in json.loads((build / "api" / "pipelines" / pipeline).read_text())["nodes"]
        }
        assert set(nodes) <= shown, pipeline
    ids = {node["name"]: node["id"] for node in main["nodes"]}
    metrics = json.loads((build / "api" / "nodes" / ids["distillation_metrics"]).read_text())
    assert metrics["preview_type"] == "JSONPreview"
    plot = json.loads((build / "api" / "nodes" / ids["quality_speed_plot"]).read_text())
    assert plot["preview_type"] == "ImagePreview"
    table = json.loads((build / "api" / "nodes" / ids["teacher_embeddings"]).read_text())
    assert table["preview_type"] == "TablePreview"


def test_describing_every_catalog_dataset_stays_offline(monkeypatch, tmp_path):
    """With a Hub id as corpus, what kedro-viz and `kedro catalog` ask of datasets opens no socket."""
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    config = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"), base_env="base", default_run_env="local"
    )
    catalog_config = config["catalog"]
    catalog_config["corpus"]["source"] = "some-org/some-hub-corpus"
    catalog = DataCatalog.from_config(catalog_config, credentials=config["credentials"])

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access while describing datasets: {args}")

    monkeypatch.chdir(tmp_path)  # no data/ here: nothing exists locally either
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(AssertionError, match="network access"):  # the guard itself works
        socket.create_connection(("127.0.0.1", 9))

    names = sorted(catalog.keys())
    assert {"corpus", *CATALOG_DATASETS} <= set(names)
    for name in names:
        dataset = catalog.get(name)
        assert isinstance(dataset._describe(), dict), name
        dataset.release()
        dataset.exists()
    assert "some-org/some-hub-corpus" in str(catalog.get("corpus"))


def test_a_missing_chromium_fails_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium chromium-driver"):
        _chromium(tmp_path / "profile")
