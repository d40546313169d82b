"""Nothing the project serves or writes loads from another host (plants run without internet).

Every HTML page and artifact is collected: ``/docs``, ``/redoc``, the dashboard pages, the figure endpoint's HTML
(both ``plotlyjs`` modes), every figure stored as an MLflow artifact, and the demo report. Each ``src=``/``href=``
must stay on the serving host, and each local script, style or icon a page names must actually be served.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVING = "http://testserver"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for attr, value in attrs:
            if attr in ("src", "href") and value:
                self.links.append((tag, attr, value))


def links(html: str) -> list[tuple[str, str, str]]:
    parser = _Links()
    parser.feed(html)
    return parser.links


def foreign(html: str, base: str = SERVING) -> list[str]:
    """Every ``src``/``href`` that resolves to a host other than ``base``'s (``data:`` and fragments are local)."""
    host = urlsplit(base).netloc
    bad = []
    for tag, attr, value in links(html):
        url = urlsplit(urljoin(base + "/", value))
        if url.scheme in ("data", "blob", "javascript", "about", "mailto"):
            continue
        if url.netloc != host:
            bad.append(f"<{tag} {attr}={value!r}>")
    return bad


def test_the_checker_catches_a_cdn() -> None:
    page = (
        '<html><head><link rel="stylesheet" href="https://cdn.jsdelivr.net/x.css">'
        '<script src="//cdn.plot.ly/plotly.min.js"></script><script src="/ui/static/a.js"></script></head>'
        '<body><img src="data:image/png;base64,AA"><a href="#top">top</a></body></html>'
    )
    assert foreign(page) == [
        "<link href='https://cdn.jsdelivr.net/x.css'>",
        "<script src='//cdn.plot.ly/plotly.min.js'>",
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    from framework.config import default_config
    from framework.datasets.process import make_process
    from framework.ExperimentHub import ExperimentHub

    home = tmp_path_factory.mktemp("offline") / "home"
    train, test = make_process(n_normal=800, n_test=300, n_sensors=5, seed=3)[:2]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPERIMENTHUB_HOME", str(home))
        hub = ExperimentHub.from_hub_config(default_config())
    try:
        hub.create_experiment(
            "offline-pump", "fault_detection", yaml.safe_load((EXAMPLES / "fault_detection.yaml").read_text())
        )
        hub.train("offline-pump", train)
        yield hub, home, test
    finally:
        hub.shutdown()


def test_every_page_and_artifact_stays_on_the_serving_host(trained, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from framework.api.app import create_app
    from framework.report import write_report

    hub, home, _test = trained
    pages: dict[str, str] = {}
    with TestClient(create_app(hub, api_key=""), base_url=SERVING) as client:
        served = ["/docs", "/docs/oauth2-redirect", "/redoc", "/ui", "/ui/jobs", "/ui/experiments/offline-pump"]
        for mode in ("local", "inline"):
            served.append(f"/experiments/offline-pump/figures/score?format=html&plotlyjs={mode}")
        for path in served:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
            assert response.headers["content-type"].startswith("text/html"), path
            pages[path] = response.text
        # each local asset a served page names is really there (a page pointing at a missing file is blank too)
        for path, html in pages.items():
            for tag, _attr, value in links(html):
                if tag in ("script", "link", "img") and not value.startswith(("data:", "#")):
                    asset = client.get(urljoin(SERVING + path, value))
                    assert asset.status_code == 200 and asset.content, (path, value, asset.status_code)

    stored = sorted(home.rglob("figures/*.html"))  # what the MLflow plugin stored with the training run
    assert stored, f"no figure artifacts under {home}"
    for artifact in stored:
        pages[str(artifact.relative_to(home))] = artifact.read_text("utf-8")

    import plotly.graph_objects as go

    figures = {"score": go.Figure(hub.figure("offline-pump", "score"))}  # the demo's path: write_report
    report = write_report(tmp_path / "report.html", "offline", {"fault detection": figures}, {"t": [{"a": 1}]})
    pages["report"] = report.read_text("utf-8")

    bad = {where: found for where, html in pages.items() if (found := foreign(html))}
    assert not bad, bad
    for where, html in pages.items():  # a figure with no plotly.js at all would be blank too
        if "Plotly.newPlot" in html:
            assert "/ui/static/plotly.min.js" in html or "plotly.js v" in html, where
