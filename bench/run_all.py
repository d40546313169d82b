"""``make bench``: run every benchmark in bench/ and print one summary table of their RESULT lines.

Each script measures our figure next to a reference in the same run and prints ``RESULT <name> key=value ...``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCHES = [
    "cli_startup",
    "mlops_logging",
    "fault_detection",
    "predict_path",
    "forecasting",
    "forecast_panel",
    "stream_transport",
    "stream_throughput",
    "jobs",
    "drift",
    "dashboard",
]


def main() -> int:
    here = Path(__file__).resolve().parent
    console = Console()
    table = Table(title="ExperimentHub benchmarks (ratios against references measured in the same run)")
    for column in ("benchmark", "figure", "value", "seconds"):
        table.add_column(column)
    failed = 0
    for name in BENCHES:
        console.rule(name)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(here / f"{name}.py")], capture_output=True, text=True)
        seconds = f"{time.perf_counter() - started:.0f}"
        console.print(result.stdout[-4000:], markup=False, highlight=False)
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
        if result.returncode != 0 or not lines:
            failed += 1
            table.add_row(name, "FAILED", result.stderr.strip().splitlines()[-1][:80] if result.stderr else "", seconds)
            continue
        for line in lines:
            for pair in line.split()[2:]:
                key, _, value = pair.partition("=")
                table.add_row(name, key, value, seconds)
    console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
