"""How fast ``experimenthub --help`` starts, next to a bare ``python -c pass`` in the same run.

The claim (issue 2): heavy libraries are imported lazily, so ``--help`` starts in under 0.5 s.
Run: ``.venv/bin/python bench/cli_startup.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEATS = 7


def best_of(command: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    exe = str(Path(sys.executable).with_name("experimenthub"))
    bare = best_of([sys.executable, "-c", "pass"])
    help_s = best_of([exe, "--help"])
    hub_import = best_of([sys.executable, "-c", "import framework.ExperimentHub"])
    mlflow_import = best_of([sys.executable, "-c", "import mlflow"])
    print(f"{'command':<40} {'median s':>9}")
    for label, value in [
        ("python -c pass (reference)", bare),
        ("experimenthub --help", help_s),
        ("import framework.ExperimentHub", hub_import),
        ("import mlflow (what we avoid)", mlflow_import),
    ]:
        print(f"{label:<40} {value:>9.3f}")
    print(
        f"RESULT cli_startup help_s={help_s:.3f} help_vs_bare_python={help_s / bare:.2f} "
        f"help_vs_import_mlflow={help_s / mlflow_import:.2f}"
    )


if __name__ == "__main__":
    main()
