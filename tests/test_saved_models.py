"""Models saved by 0.1.0 still load, and predict exactly what that release predicted (issue 11, item 10)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "models_0_1_0"


def _load(name: str):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(FIXTURES / name / "model")).unwrap_python_model().model


@pytest.mark.parametrize("name", ["fd", "ts"])
def test_saved_model_predicts_as_it_did(name):
    model = _load(name)
    expected = pd.read_parquet(FIXTURES / name / "expected.parquet")
    got = model.predict(pd.read_parquet(FIXTURES / name / "input.parquet"))
    missing = [c for c in expected.columns if c not in got.columns]
    assert not missing, f"columns the 0.1.0 model returned are gone: {missing}"
    pd.testing.assert_frame_equal(got[expected.columns].reset_index(drop=True), expected, check_dtype=False)


def test_saved_forecaster_horizon_is_unchanged():
    expected = pd.read_parquet(FIXTURES / "ts" / "expected_horizon.parquet")
    got = _load("ts").predict(None)
    pd.testing.assert_frame_equal(got[expected.columns].reset_index(drop=True), expected, check_dtype=False)
