"""Chaos and resource-bomb tests against a real API server process (issue 19): slow, run by CI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_api import Server, run_server
from tests.test_records_files import parquet_bomb

pytestmark = pytest.mark.slow


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("reliability-api")
    with run_server(["-m", "uvicorn", "framework.api.app:create_app", "--factory"], workdir) as running:
        yield running


def test_a_parquet_bomb_is_refused_without_expanding(api, tmp_path):
    bomb = tmp_path / "bomb.parquet"
    parquet_bomb(bomb, rows=100_000_000)  # 100M zeros: 800 MB in memory
    assert bomb.stat().st_size < 2 * 1024 * 1024
    name = f"bomb-{uuid.uuid4().hex[:8]}"
    with api.client() as client:
        created = client.post(
            "/experiments", json={"name": name, "type": "fault_detection", "spec": {"model": {"name": "pca"}}}
        )
        assert created.status_code == 201, created.text
        before = peak_rss_mb(api.process.pid)
        answer = client.post(
            f"/experiments/{name}/train",
            files={"file": ("bomb.parquet", bomb.read_bytes(), "application/octet-stream")},
        )
        grown = peak_rss_mb(api.process.pid) - before
    assert answer.status_code in (413, 422), answer.text
    assert "over the limit" in answer.json()["error"]["message"]
    assert grown < 200, f"the server's peak RSS grew by {grown:.0f} MB"
