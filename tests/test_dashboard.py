"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real ``experimenthub serve``.

Each test saves a screenshot under ``tests/artifacts/`` (git-ignored). Every request the page makes is recorded:
none may leave 127.0.0.1, and the browser console must show no errors.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
API_KEY = "dash-key-5ecret"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

playwright_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    url: str
    home: Path
    api_key: str | None


@pytest.fixture(scope="module")
def process_data():
    from framework.datasets.process import make_process

    return make_process(n_normal=1500, n_test=600, n_sensors=8, seed=5)


def _start(home: Path, api_key: str | None) -> Iterator[Served]:
    port = _free_port()
    env = {**os.environ, "EXPERIMENTHUB_HOME": str(home)}
    env.pop("EXPERIMENTHUB_API_KEY", None)
    if api_key:
        env["EXPERIMENTHUB_API_KEY"] = api_key
    log = (home.parent / f"serve-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "framework.cli", "serve", "--port", str(port)],
        cwd=home.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"serve exited: {(home.parent / f'serve-{port}.log').read_text()[-3000:]}")
        try:
            httpx.get(f"{url}/health", timeout=2)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("serve did not start")
            time.sleep(0.3)
    try:
        yield Served(url, home, api_key)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _trained_home(root: Path, process_data, names: list[str]) -> Path:
    from framework.config import default_config
    from framework.ExperimentHub import ExperimentHub

    home = root / "home"
    spec = yaml.safe_load((EXAMPLES / "fault_detection.yaml").read_text())
    with pytest.MonkeyPatch.context() as patch:  # the embedded default of that home, as `serve` will open it
        patch.setenv("EXPERIMENTHUB_HOME", str(home))
        hub = ExperimentHub.from_hub_config(default_config())
    try:
        for name in names:
            hub.create_experiment(name, "fault_detection", spec)
            hub.train(name, process_data[0])
            hub.train(name, process_data[0])  # two versions: one to promote
    finally:
        hub.shutdown()
    return home


@pytest.fixture(scope="module")
def open_server(tmp_path_factory, process_data) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("dash-open")
    yield from _start(_trained_home(root, process_data, ["pump-a", "pump-b"]), None)


@pytest.fixture(scope="module")
def key_server(tmp_path_factory, process_data) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("dash-key")
    yield from _start(_trained_home(root, process_data, ["pump-k"]), API_KEY)


@dataclass
class Browser:
    page: object
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def browser(request) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = "Debian chromium is not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        seen = Browser(page)
        page.on("request", lambda req: seen.requests.append(req.url))
        page.on("console", lambda msg: seen.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
        try:
            yield seen
        finally:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
            chromium.close()
    hosts = {urlsplit(url).hostname for url in seen.requests if not url.startswith(("data:", "blob:"))}
    assert hosts <= {"127.0.0.1"}, f"the page loaded from other hosts: {sorted(hosts)}"
    assert not seen.errors, f"console errors: {seen.errors}"


def test_overview_lists_every_experiment_with_its_champion(open_server, browser):
    page = browser.page
    page.goto(f"{open_server.url}/")  # a browser at / is sent to the dashboard
    page.wait_for_selector("#experiments a:text('pump-b')")
    rows = page.locator("#experiments tbody tr")
    assert rows.count() == 2
    text = page.locator("#experiments").inner_text()
    assert "pump-a" in text and "v2" in text and "never ran" in text
    assert "mlops: healthy" in page.locator("#health").inner_text()


def test_promote_moves_the_champion(open_server, browser):
    page = browser.page
    page.goto(f"{open_server.url}/ui/experiments/pump-a")
    page.wait_for_selector("#versions button:text('Promote')")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#versions button:text('Promote')")
    page.wait_for_selector("#versions td.champion:text('v1')")
    champion = httpx.get(f"{open_server.url}/experiments/pump-a").json()["champion"]
    assert champion == 1
    page.wait_for_selector("#figures .figure .plot-container")  # the served version's stored figures render


def test_jobs_page_links_each_training_to_its_version(open_server, browser):
    page = browser.page
    page.goto(f"{open_server.url}/ui/jobs")
    page.wait_for_selector("#jobs td a")
    text = page.locator("#jobs").inner_text()
    assert text.count("finished") >= 4 and "v2" in text and "UTC" in text


def test_live_chart_gains_points_and_shows_the_alarm_episode(open_server, browser, process_data):
    import threading

    import pandas as pd

    from framework.config import default_config
    from framework.ExperimentHub import ExperimentHub

    test = process_data[1]
    step = test.index[(test["fault_type"] == "step")][0]  # stop inside a step fault: its episode stays open
    rows = test.loc[: step + 60].drop(columns=["fault", "fault_type"])
    page = browser.page
    page.goto(f"{open_server.url}/ui/experiments/pump-b")
    page.wait_for_selector("#versions td.champion")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPERIMENTHUB_HOME", str(open_server.home))
        hub = ExperimentHub.from_hub_config(default_config())
    stop = threading.Event()
    scorer = threading.Thread(target=hub.stream, args=("pump-b", stop), kwargs={"batch_size": 5}, daemon=True)
    scorer.start()
    try:
        first, rest = rows.iloc[:100], rows.iloc[100:]
        hub.publish_records("pump-b", first, batch_size=20)
        page.wait_for_function("document.getElementById('live-chart').data?.[0]?.x?.length >= 100", timeout=60_000)
        before = page.evaluate("document.getElementById('live-chart').data[0].x.length")
        hub.publish_records("pump-b", pd.DataFrame(rest), batch_size=20)
        page.wait_for_function(f"document.getElementById('live-chart').data[0].x.length >= {len(rows)}", timeout=90_000)
        assert page.evaluate("document.getElementById('live-chart').data[0].x.length") > before
        page.wait_for_selector("#episode .state-bad", timeout=30_000)  # the open episode and its sensors
        assert "ALARM since" in page.locator("#episode").inner_text()
        assert page.locator("#episode td").count() >= 2
        assert page.evaluate("document.getElementById('live-chart').data[2].x.length") > 0  # alarm markers
        assert "UTC" in page.locator("#live-status").inner_text()
    finally:
        stop.set()
        scorer.join(timeout=60)
        hub.shutdown()


def test_with_a_key_the_page_shows_only_the_login(key_server, browser):
    page = browser.page
    response = page.goto(f"{key_server.url}/ui")
    assert page.url.endswith("/ui/login") and response is not None
    assert page.locator("#experiments").count() == 0
    assert httpx.get(f"{key_server.url}/ui/api/overview").status_code == 401  # data calls check it too
    page.fill("#key", "wrong")
    page.click("button[type=submit]")
    assert "not the hub's API key" in page.locator(".error").inner_text()
    browser.errors.clear()  # the 401 of the wrong key is logged by the browser as a failed resource
    page.fill("#key", API_KEY)
    page.click("button[type=submit]")
    page.wait_for_selector("#experiments a:text('pump-k')")
    cookie = next(c for c in page.context.cookies() if c["name"] == "ehub_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_a_cookie_without_the_csrf_token_cannot_promote(key_server, browser):
    page = browser.page
    page.goto(f"{key_server.url}/ui/login")
    page.fill("#key", API_KEY)
    page.click("button[type=submit]")
    page.wait_for_selector("#experiments a:text('pump-k')")
    status = page.evaluate(
        "async () => (await fetch('/experiments/pump-k/versions/1/promote', {method: 'POST'})).status"
    )
    assert status == 403
    browser.errors.clear()  # the refused fetch is logged by the browser
    assert (
        httpx.get(f"{key_server.url}/experiments/pump-k", headers={"Authorization": f"Bearer {API_KEY}"}).json()[
            "champion"
        ]
        == 2
    )
