"""A small run of each benchmark that has no smoke test of its own: it runs and prints finite RESULT figures.

Benchmarks prove their claims in ``make bench`` (ratios against references measured in the same run); here they
only must not rot. No duration is asserted.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parent.parent

SMOKE_RUNS = {
    "cli_startup": (["--repeats", "1"], ()),
    "mlops_logging": (["--repeats", "2"], ()),  # starts its own MLflow server
    "stream_transport": (["--messages", "200", "--repeats", "1"], ("rabbitmq",)),
    "stream_throughput": (["--quick"], ("rabbitmq",)),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "bench",
    [pytest.param(name, marks=[pytest.mark.services] if SMOKE_RUNS[name][1] else []) for name in SMOKE_RUNS],
)
def test_benchmark_runs_and_prints_finite_results(bench: str) -> None:
    args, services = SMOKE_RUNS[bench]
    for service in services:
        require_service(service)
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{bench}.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(f"RESULT {bench} ")]
    assert lines, result.stdout[-3000:]
    for line in lines:
        figures = dict(pair.split("=", 1) for pair in line.split()[2:])
        numbers = [float(v) for v in figures.values() if v.replace(".", "", 1).replace("-", "", 1).isdigit()]
        assert numbers and all(math.isfinite(n) and n > 0 for n in numbers), line
