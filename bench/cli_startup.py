"""How fast the CLI answers, next to a bare ``python -c pass`` and ``import mlflow`` in the same run.

The claims: heavy libraries are imported lazily, so ``--help`` and an argument or file error (``train x --data
missing.csv``) answer in under 0.5 s, before MLflow is imported (issues 2 and 18); ``experiments list`` on the
embedded store (MLflow on SQLite, which it must import) takes under 2 s.
Run: ``.venv/bin/python bench/cli_startup.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def best_of(command: list[str], repeats: int, *, expect: int = 0, cwd: str | None = None) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, cwd=cwd)
        times.append(time.perf_counter() - started)
        if result.returncode != expect:
            raise SystemExit(f"{command} exited {result.returncode}: {result.stderr.decode()[-500:]}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each command to take the median of")
    repeats = parser.parse_args().repeats
    exe = str(Path(sys.executable).with_name("experimenthub"))
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        os.environ["EXPERIMENTHUB_HOME"] = str(Path(tmp) / "home")
        subprocess.run([exe, "--embedded", "experiments", "list"], check=True, capture_output=True, cwd=tmp)  # create
        bare = best_of([sys.executable, "-c", "pass"], repeats)
        help_s = best_of([exe, "--help"], repeats)
        missing_s = best_of([exe, "train", "x", "--data", "missing.csv"], repeats, expect=2, cwd=tmp)
        list_s = best_of([exe, "--embedded", "experiments", "list"], repeats, cwd=tmp)
        hub_import = best_of([sys.executable, "-c", "import framework.ExperimentHub"], repeats)
        mlflow_import = best_of([sys.executable, "-c", "import mlflow"], repeats)
    print(f"{'command':<52} {'median s':>9}")
    for label, value in [
        ("python -c pass (reference)", bare),
        ("experimenthub --help", help_s),
        ("experimenthub train x --data missing.csv (error)", missing_s),
        ("experimenthub --embedded experiments list", list_s),
        ("import framework.ExperimentHub", hub_import),
        ("import mlflow (reference: what errors avoid)", mlflow_import),
    ]:
        print(f"{label:<52} {value:>9.3f}")
    print(
        f"RESULT cli_startup help_s={help_s:.3f} file_error_s={missing_s:.3f} list_s={list_s:.3f} "
        f"help_vs_bare_python={help_s / bare:.2f} file_error_vs_import_mlflow={missing_s / mlflow_import:.2f} "
        f"list_vs_import_mlflow={list_s / mlflow_import:.2f}"
    )


if __name__ == "__main__":
    main()
