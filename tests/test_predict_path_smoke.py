"""Smoke version of bench/predict_path.py: it runs, prints every row of its table and finite ratios (no timing
is asserted: the machine is shared)."""

from __future__ import annotations

import math

from bench.predict_path import MODELS, PATHS, main


def test_predict_path_bench_runs_and_prints_its_table(capsys) -> None:
    results = main(["--smoke"])
    out = capsys.readouterr().out
    for model in MODELS:
        for path in PATHS:
            assert results[model, path] > 0
            assert any(line.split()[:1] == [model] and path in line for line in out.splitlines()), (model, path)
    result = next(line for line in out.splitlines() if line.startswith("RESULT predict_path "))
    ratios = dict(pair.split("=") for pair in result.split()[2:])
    assert set(ratios) == {f"{model}_{path}_vs_bare" for model in MODELS for path in ("alarms", "all")}
    assert all(math.isfinite(float(value)) and float(value) > 0 for value in ratios.values())
