"""Dashboard weight and speed, measured in Debian's Chromium (Playwright) against a real ``experimenthub serve``.

Set-up: 10 trained fault-detection experiments on the embedded default, a stream scorer running on one of them
while records are published. Measured, as the median of several loads:

- the page's own HTML, CSS and JS in bytes (plotly.js, served from the installed plotly package, counted apart);
- the overview: navigation start until every experiment's row is rendered;
- the reference in the same run: the bare ``GET /ui/api/overview`` JSON call the page makes (so the ratio says
  how much the browser adds to the data it shows).

    python bench/dashboard.py [--loads 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
N_EXPERIMENTS = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare(home: Path) -> tuple[object, str]:
    from framework.config import default_config
    from framework.datasets.process import make_process
    from framework.ExperimentHub import ExperimentHub

    os.environ["EXPERIMENTHUB_HOME"] = str(home)
    hub = ExperimentHub.from_hub_config(default_config())
    train, test = make_process(n_normal=1500, n_test=4000, n_sensors=12, seed=11)
    spec = yaml.safe_load((ROOT / "examples" / "fault_detection.yaml").read_text())
    for i in range(N_EXPERIMENTS):
        hub.create_experiment(f"unit-{i:02d}", "fault_detection", spec, exist_ok=True)
        hub.train(f"unit-{i:02d}", train)
    return hub, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5, help="page loads to take the median of")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    console = Console()
    with tempfile.TemporaryDirectory(prefix="ehub-dash-bench-") as tmp:
        home = Path(tmp) / "home"
        with console.status(f"training {N_EXPERIMENTS} experiments"):
            hub, test = _prepare(home)
        stop = threading.Event()
        scorer = threading.Thread(target=hub.stream, args=("unit-00", stop), daemon=True)
        scorer.start()
        publisher = threading.Thread(
            target=lambda: hub.publish_records("unit-00", test.drop(columns=["fault", "fault_type"]), batch_size=20),
            daemon=True,
        )
        publisher.start()
        port = _free_port()
        env = {**os.environ, "EXPERIMENTHUB_HOME": str(home)}
        server = subprocess.Popen(
            [sys.executable, "-m", "framework.cli", "serve", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    httpx.get(f"{url}/health", timeout=2)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            api_times = []
            for _ in range(args.loads):
                started = time.perf_counter()
                httpx.get(f"{url}/ui/api/overview", timeout=30).raise_for_status()
                api_times.append(time.perf_counter() - started)
            sizes: dict[str, int] = {}
            page_times = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                for _ in range(args.loads):
                    page = browser.new_page(viewport={"width": 1920, "height": 1080})
                    page.on(
                        "response",
                        lambda r: sizes.__setitem__(r.url.split("?")[0], int(r.headers.get("content-length", 0))),
                    )
                    started = time.perf_counter()
                    page.goto(f"{url}/ui")
                    page.wait_for_function(
                        f"document.querySelectorAll('#experiments tbody tr a').length === {N_EXPERIMENTS}"
                    )
                    page_times.append(time.perf_counter() - started)
                    page.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            stop.set()
            scorer.join(timeout=30)
            hub.shutdown()
    own = sum(size for path, size in sizes.items() if "/api/" not in path and not path.endswith("plotly.min.js"))
    plotly = sum(size for path, size in sizes.items() if path.endswith("plotly.min.js"))
    page_s, api_s = statistics.median(page_times), statistics.median(api_times)
    table = Table(title=f"dashboard: overview with {N_EXPERIMENTS} experiments and a running stream")
    for column in ("measure", "value", "reference in the same run"):
        table.add_column(column)
    table.add_row(
        "page's own HTML+CSS+JS",
        f"{own / 1024:.1f} KB",
        f"plotly.js {plotly / 1024:.0f} KB" if plotly else "no plotly.js",
    )
    table.add_row("overview rendered (median)", f"{page_s:.2f} s", f"GET /ui/api/overview alone: {api_s:.2f} s")
    table.add_row("browser overhead", f"{page_s / api_s:.1f}× the JSON call", "")
    console.print(table)
    print(f"RESULT dashboard own_kb={own / 1024:.1f} overview_s={page_s:.2f} json_s={api_s:.2f}")


if __name__ == "__main__":
    main()
