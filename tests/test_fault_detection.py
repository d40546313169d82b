"""FaultDetectionExperiment and its detector catalog: pure ML, no hub, no services."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from framework.datasets.process import FAULT_TYPES, make_process
from framework.errors import ConfigError, DataValidationError
from framework.Experiment import DataQualityWarning
from framework.FaultDetection import FaultDetectionExperiment
from framework.models.detectors import DETECTORS

SPEC = {"timestamp": "timestamp", "label": "fault"}
SENSORS = [f"s{j:02d}" for j in range(1, 25)]


def spec(name: str = "pca", **extra: object) -> dict:
    return {"model": {"name": name, **extra.pop("model", {})}, **SPEC, **extra}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_process(n_normal=8000, n_test=3200, seed=0)


@pytest.fixture(scope="module")
def pca(data) -> FaultDetectionExperiment:
    return FaultDetectionExperiment(spec()).fit(data[0])


# ---------------------------------------------------------------- generator
def test_generator_is_seeded_labelled_and_correlated():
    train, test = make_process(n_normal=1000, n_test=1600, seed=3)
    again, _ = make_process(n_normal=1000, n_test=10, seed=3, faults=("step",))
    pd.testing.assert_frame_equal(train, again)  # training data does not depend on the faults
    assert list(train.columns) == ["timestamp", *SENSORS]
    assert (train["timestamp"].diff().dropna() == pd.Timedelta("1s")).all()
    assert test["timestamp"].iloc[0] == train["timestamp"].iloc[-1] + pd.Timedelta("1s")
    assert set(test["fault_type"]) == {"", *FAULT_TYPES}
    assert ((test["fault"] == 1) == (test["fault_type"] != "")).all()
    corr = np.abs(np.corrcoef(train[SENSORS].to_numpy(), rowvar=False)[np.triu_indices(24, 1)])
    assert np.median(corr) > 0.3  # strongly correlated sensors, as on a plant


# --------------------------------------------------------------- detectors
@pytest.mark.parametrize("name", list(DETECTORS))
def test_each_detector_fits_and_predicts(name, data):
    train, test = data
    exp = FaultDetectionExperiment(spec(name)).fit(train)
    out = exp.predict(test)
    assert out.index.equals(test.index)
    expected = ["timestamp", "score", "threshold", "is_anomaly", "top_feature", "top_share", "top_features"]
    assert list(out.columns[: len(expected)]) == expected
    assert ("t2" in out.columns and "spe" in out.columns) == (name == "pca")
    assert out["is_anomaly"].dtype == bool and np.isfinite(out["score"]).all()
    assert (out["threshold"] == exp.threshold_).all()
    alarms = out.loc[out["is_anomaly"]]  # the default explains the alarms only (contributions: alarms)
    top_three = r"^s\d\d:[01]\.\d\d,s\d\d:[01]\.\d\d,s\d\d:[01]\.\d\d$"
    assert len(alarms) and alarms["top_features"].str.match(top_three).all()
    assert set(alarms["top_feature"]) <= set(SENSORS) and alarms["top_share"].between(0, 1).all()
    quiet = out.loc[~out["is_anomaly"]]
    assert (quiet["top_feature"] == "").all() and quiet["top_share"].isna().all()
    assert all(isinstance(v, float) for v in exp.metrics_.values())
    assert exp.metrics_["n_features"] == 24 and exp.metrics_["threshold"] == exp.threshold_
    metrics = exp.evaluate(test)
    assert 0.5 < metrics["roc_auc"] <= 1 and metrics["false_alarm_rate"] < 0.1


def test_default_spec_is_the_benchmark_leader_and_strict():
    exp = FaultDetectionExperiment({})
    assert exp.spec.model.name == "var_innovation" and exp.spec.threshold.false_alarm_rate == 0.01
    assert exp.spec.threshold.persistence is None
    with pytest.raises(ConfigError, match=r"threshold\.bogus: unknown key"):
        FaultDetectionExperiment({"threshold": {"bogus": 1}})
    with pytest.raises(ConfigError, match="must not exceed"):
        FaultDetectionExperiment({"threshold": {"persistence": {"k": 6, "n": 5}}})
    with pytest.raises(ConfigError, match="false_alarm_rate"):
        FaultDetectionExperiment({"threshold": {"false_alarm_rate": 0}})


def test_pca_reaches_the_auc_target_on_step_and_drift(pca):
    for fault in ("step", "drift"):
        _, test = make_process(n_normal=8000, n_test=3200, seed=0, faults=(fault,))
        metrics = pca.evaluate(test)
        assert metrics["roc_auc"] >= 0.95, (fault, metrics)
        assert metrics["detection_rate"] == 1.0


def test_contributions_name_the_faulty_sensor(pca):
    _, test = make_process(n_normal=8000, n_test=3200, seed=0, faults=("step",))
    out = pca.predict(test)
    caught = out["is_anomaly"] & (test["fault"] == 1)
    assert caught.sum() > 0.5 * (test["fault"] == 1).sum()
    assert test["fault_sensor"][caught].nunique() >= 5  # one random sensor per episode, 8 episodes
    assert (out["top_feature"][caught] == test["fault_sensor"][caught]).mean() > 0.9
    assert out["top_share"][caught].median() > 0.4


def test_calibrated_false_alarm_rate_on_fresh_normal_data():
    train, fresh = make_process(n_normal=20000, n_test=20000, seed=1, faults=())
    exp = FaultDetectionExperiment(spec()).fit(train)
    rate = exp.predict(fresh)["is_anomaly"].mean()
    assert 0.004 <= rate <= 0.02  # target 0.01; the factors are slow, so a few independent samples only
    # the threshold is the largest of the hold-out blocks' quantiles: at most the target on the hold-out itself
    assert 0.003 <= exp.metrics_["holdout_false_alarm_rate"] <= 0.01
    verdict = exp.validate()
    assert verdict.passed, verdict.reason
    assert verdict.metrics["validation_false_alarm_rate"] == exp.metrics_["validation_false_alarm_rate"]


def test_validate_fails_when_the_holdout_is_not_like_the_rest():
    train, _ = make_process(n_normal=4000, n_test=0, seed=2, faults=())
    train.loc[train.index[-400:], "s03"] += 50.0  # the second half of the hold-out has a fault
    verdict = FaultDetectionExperiment(spec()).fit(train).validate()
    assert not verdict.passed and "above the limit" in verdict.reason


def test_the_gate_does_not_refuse_a_small_well_behaved_holdout_for_noise():
    """600 normal rows leave a 120-row hold-out: a threshold calibrated on a dozen of its rows is exceeded 1 time in
    13 by chance, and a few alarms on so few rows are no evidence. The gate allows for both (a fixed 2x the target
    passed 2 of these 8 first versions); a hold-out whose later blocks move is still refused (next test)."""
    verdicts = []
    for seed in range(8):
        train, _ = make_process(n_normal=600, n_test=0, seed=seed, faults=())
        verdicts.append(FaultDetectionExperiment({"timestamp": "timestamp"}).fit(train).validate())
    assert sum(v.passed for v in verdicts) >= 6, [v.reason for v in verdicts]
    assert all(v.metrics["validation_limit"] > 2 * 0.01 for v in verdicts)  # chance on so few rows allows more


def test_persistence_is_a_k_of_n_rolling_count(data):
    train, test = data
    raw = FaultDetectionExperiment(spec()).fit(train).predict(test)
    persistent_exp = FaultDetectionExperiment(spec(threshold={"persistence": {"k": 3, "n": 5}})).fit(train)
    persistent = persistent_exp.predict(test)
    pd.testing.assert_series_equal(raw["score"], persistent["score"])
    exceed = (raw["score"] > raw["threshold"]).astype(int)
    expected = exceed.rolling(5, min_periods=1).sum() >= 3  # test rows are already in time order
    assert (persistent["is_anomaly"] == expected).all()
    normal = test["fault"] == 0
    assert persistent["is_anomaly"][normal].sum() <= 0.75 * raw["is_anomaly"][normal].sum()
    assert persistent_exp.evaluate(test)["detection_rate"] >= 0.75


def test_dynamic_pca_pads_the_first_rows(data):
    train, test = data
    exp = FaultDetectionExperiment(spec(model={"params": {"lags": 2}})).fit(train)
    out = exp.predict(test)
    assert exp.detector_.components_.shape[0] == 3 * 24
    assert np.isfinite(out["score"]).all() and out.loc[out["is_anomaly"], "top_share"].between(0, 1).all()
    # the first rows see copies of the first row as their history, whatever came before
    tail = exp.predict(test.iloc[10:])
    assert tail["score"].iloc[5:].to_numpy() == pytest.approx(out["score"].iloc[15:].to_numpy())
    assert exp.evaluate(test)["roc_auc"] > 0.8


def test_pickle_round_trip_and_determinism(data):
    train, test = data
    for name in ("pca", "isolation_forest"):
        exp = FaultDetectionExperiment(spec(name)).fit(train)
        clone = pickle.loads(pickle.dumps(exp))
        pd.testing.assert_frame_equal(exp.predict(test), clone.predict(test))
        again = FaultDetectionExperiment(spec(name)).fit(train)
        pd.testing.assert_frame_equal(exp.predict(test), again.predict(test))


def test_rows_are_scored_in_time_order_and_returned_in_input_order(pca, data):
    _, test = data
    shuffled = test.sample(frac=1.0, random_state=0)
    out = pca.predict(shuffled)
    assert out.index.equals(shuffled.index)
    pd.testing.assert_frame_equal(out.loc[test.index], pca.predict(test))


# -------------------------------------------------------------- streaming
def _streamed(exp: FaultDetectionExperiment, test: pd.DataFrame, rows: int) -> pd.DataFrame:
    """``test`` through ``predict_stream`` in batches of ``rows``, each call continuing the state of the last."""
    parts, state = [], None
    for start in range(0, len(test), rows):
        out, state = exp.predict_stream(test.iloc[start : start + rows], state)
        parts.append(out)
    return pd.concat(parts)


def _with_gaps(test: pd.DataFrame) -> pd.DataFrame:
    test = test.copy()
    test.loc[test.index[100:131], "s07"] = np.nan  # dead for 31 rows: a sensor fault from its 6th row
    test.loc[test.index[10:13], "s08"] = np.nan  # a 3-row gap, within max_missing_rows (5)
    test.loc[test.index[200:206], "s09"] = np.nan  # 6 rows: a sensor fault on its last row only
    return test


@pytest.mark.parametrize("name, params", [("var_innovation", {}), ("pca", {"lags": 2}), ("pca", {})])
def test_streamed_batches_equal_one_predict(name, params, data):
    """Batches of 1, 7 and 100 rows through ``predict_stream`` give one ``predict``'s alarms, sensor faults, missing
    features and top features exactly, and its scores to 1e-12 relative.

    The state carries the detector's last ``lags`` rows, var_innovation's EWMA filter state (lfilter's own state,
    so the filter itself continues exactly), the persistence flags and each feature's missing run. The scores
    still differ in their last bits: a BLAS matrix product rounds a row differently depending on how many rows it
    multiplies (one row goes through gemv, others through differently blocked gemm kernels), so bit-exact scores
    would take row-by-row products, many times slower."""
    train, test = data
    exp = FaultDetectionExperiment(
        spec(name, model={"params": params}, threshold={"persistence": {"k": 2, "n": 3}})
    ).fit(train)
    test = _with_gaps(test.iloc[1400:1800].drop(columns=["fault", "fault_type", "fault_sensor"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        offline = exp.predict(test)
        assert offline["is_anomaly"].any() and not offline["is_anomaly"].all()
        assert offline["sensor_fault"].sum() == 31 - 5 + 1
        for rows in (1, 7, 100):
            streamed = _streamed(exp, test, rows)
            assert streamed.index.equals(offline.index)
            for column in ("is_anomaly", "sensor_fault", "missing_features", "top_feature", "top_features"):
                assert streamed[column].tolist() == offline[column].tolist(), (rows, column)
            for column in offline.select_dtypes("float").columns:
                np.testing.assert_allclose(streamed[column], offline[column], rtol=1e-12, atol=0, err_msg=column)


def test_sensor_fault_counts_missing_rows_across_stream_calls(pca, data):
    """A sensor dead for longer than ``max_missing_rows`` is a sensor fault, however the rows were batched."""
    test = data[1].head(60).copy()
    test.loc[test.index[20:], "s07"] = np.nan  # dead from row 20 on
    expected = np.arange(60) >= 20 + 5  # more than 5 consecutive missing rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        assert (pca.predict(test)["sensor_fault"].to_numpy() == expected).all()
        for rows in (1, 7, 100):
            assert (_streamed(pca, test, rows)["sensor_fault"].to_numpy() == expected).all(), rows
        # a reading in between ends the run
        test.loc[test.index[22], "s07"] = 1.0
        expected = np.arange(60) >= 23 + 5
        for rows in (1, 7, 100):
            assert (_streamed(pca, test, rows)["sensor_fault"].to_numpy() == expected).all(), rows


def test_contributions_for_alarms_only(pca, data):
    """``contributions: alarms`` names the sensors of the alarm rows as ``all`` does, and leaves the others blank."""
    _, test = data
    lean = FaultDetectionExperiment(spec(contributions="alarms")).fit(data[0])
    full, out = pca.predict(test), lean.predict(test)
    alarm = full["is_anomaly"].to_numpy()
    assert 0 < alarm.sum() < len(alarm) and list(out.columns) == list(full.columns)
    pd.testing.assert_frame_equal(
        out.drop(columns=["top_feature", "top_share", "top_features"]),
        full.drop(columns=["top_feature", "top_share", "top_features"]),
    )
    for column in ("top_feature", "top_features"):
        assert out[column][alarm].tolist() == full[column][alarm].tolist()
        assert (out[column][~alarm] == "").all()
    np.testing.assert_allclose(out["top_share"][alarm], full["top_share"][alarm], rtol=1e-12)
    assert out["top_share"][~alarm].isna().all()
    streamed = _streamed(lean, test, 50)
    assert streamed["top_features"].tolist() == out["top_features"].tolist()


# ---------------------------------------------------------------- evaluate
def _auc_by_hand(y: list[int], s: list[float]) -> float:
    pos = [v for v, t in zip(s, y, strict=True) if t]
    neg = [v for v, t in zip(s, y, strict=True) if not t]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _average_precision_by_hand(y: list[int], s: list[float]) -> float:
    ranked = sorted(zip(s, y, strict=True), reverse=True)
    hits, total = 0, 0.0
    for rank, (_, label) in enumerate(ranked, start=1):
        if label:
            hits += 1
            total += hits / rank
    return total / hits


def test_evaluate_on_a_hand_made_example():
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.standard_normal((500, 2)), columns=["a", "b"])
    train["t"] = np.arange(500) * 2
    exp = FaultDetectionExperiment({"model": {"name": "pca"}, "timestamp": "t", "label": "y"}).fit(train)
    #            0  1  2  3  4  5  6  7  8  9 10 11
    labels = [0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    faulty = [3, 4, 10]  # episode 1 (rows 2-4) caught one row late, episode 2 (7-8) missed, row 10 false alarm
    values = rng.normal(0, 0.3, (12, 2))
    values[faulty] = [[30.0, -30.0], [31.0, -32.0], [40.0, -35.0]]
    test = pd.DataFrame(values, columns=["a", "b"])
    test["t"] = 5000 + np.arange(12) * 2  # 2 s cadence
    test["y"] = labels
    test = test.iloc[::-1]  # reversed on purpose: evaluate must put rows in time order

    scores = exp.predict(test).sort_values("t")
    assert list(np.flatnonzero(scores["is_anomaly"])) == faulty  # the example is what we think it is
    metrics = exp.evaluate(test)
    s = scores["score"].tolist()
    assert metrics["roc_auc"] == pytest.approx(_auc_by_hand(labels, s))
    assert metrics["pr_auc"] == pytest.approx(_average_precision_by_hand(labels, s))
    # alarms 3, 4, 10 against 5 positives: tp=2, fp=1, fn=3
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 5)
    assert metrics["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 3))
    assert metrics["false_alarm_rate"] == pytest.approx(1 / 7)
    assert metrics["n_episodes"] == 2 and metrics["detection_rate"] == 0.5
    assert metrics["mean_detection_delay"] == 1.0
    assert metrics["mean_detection_delay_s"] == 2.0


def test_evaluate_needs_a_label(pca, data):
    _, test = data
    with pytest.raises(DataValidationError, match="fault: label column is missing"):
        pca.evaluate(test.drop(columns="fault"))
    with pytest.raises(DataValidationError, match="fault: labels must be 0/1"):
        pca.evaluate(test.assign(fault=test["fault"] * 2))
    unlabelled = FaultDetectionExperiment({"timestamp": "timestamp"}).fit(data[0].iloc[:500])
    with pytest.raises(DataValidationError, match="label"):
        unlabelled.evaluate(test)


# --------------------------------------------------------------- bad input
def test_bad_data_gets_clear_errors(pca, data):
    train, test = data
    small = train.iloc[:300]
    with pytest.raises(DataValidationError, match="s07: missing feature column"):
        pca.predict(test.drop(columns="s07"))
    with pytest.raises(DataValidationError, match="s02: missing feature column"):
        FaultDetectionExperiment({"features": ["s01", "s02"]}).fit(small.drop(columns="s02"))
    broken = small.astype({"s04": object})
    broken.loc[broken.index[7], "s04"] = "n/a?"
    with pytest.raises(DataValidationError, match=r"s04: non-numeric value at row 7"):
        FaultDetectionExperiment({"features": SENSORS}).fit(broken)
    with pytest.raises(DataValidationError, match="no rows"):
        FaultDetectionExperiment({}).fit(small.iloc[:0])
    with pytest.raises(DataValidationError, match="no rows"):
        pca.predict(test.iloc[:0])
    with pytest.raises(DataValidationError, match="every feature value is missing"):
        FaultDetectionExperiment({"features": SENSORS}).fit(small.assign(**dict.fromkeys(SENSORS, np.nan)))
    with pytest.raises(DataValidationError, match="s09: the column has no values"):
        FaultDetectionExperiment({"features": SENSORS}).fit(small.assign(s09=np.nan))
    with pytest.raises(DataValidationError, match=r"need at least \d+ complete rows for 24 features"):
        FaultDetectionExperiment({}).fit(small.iloc[:20])
    with pytest.raises(DataValidationError, match="timestamp: timestamp column is missing"):
        pca.predict(test.drop(columns="timestamp"))
    with pytest.raises(DataValidationError, match="timestamp: timestamps must be"):
        pca.predict(test.assign(timestamp="yesterday"))


def test_bad_config_gets_clear_errors():
    with pytest.raises(ConfigError) as info:
        FaultDetectionExperiment({"model": {"name": "pcaa"}})
    assert info.value.field == "model.name"
    assert "Did you mean 'pca'" in str(info.value)
    for name in DETECTORS:
        assert name in str(info.value)
    with pytest.raises(ConfigError, match=r"model\.params\.bogus: unknown parameter .*n_estimators") as info:
        FaultDetectionExperiment({"model": {"name": "isolation_forest", "params": {"bogus": 1}}})
    with pytest.raises(ConfigError, match=r"model\.params\.variance_retained: must be"):
        FaultDetectionExperiment({"model": {"name": "pca", "params": {"variance_retained": 1.5}}})
    with pytest.raises(ConfigError, match=r"model\.params\.novelty: is fixed"):
        FaultDetectionExperiment({"model": {"name": "lof", "params": {"novelty": False}}})
    with pytest.raises(ConfigError, match=r"model\.params: n_estimators: must be an integer from 1 to"):
        FaultDetectionExperiment({"model": {"name": "isolation_forest", "params": {"n_estimators": -1}}})


def test_missing_values_and_constant_columns_follow_the_policy(data):
    train, test = data
    train = train.iloc[:2000].copy()
    train.loc[train.index[:5], "s01"] = np.nan
    train["constant"] = 7.0
    with pytest.warns(DataQualityWarning) as caught:
        exp = FaultDetectionExperiment(spec()).fit(train)
    messages = " ".join(str(w.message) for w in caught)
    assert "dropped 5 of 2000 rows" in messages and "zero-variance feature(s) ['constant']" in messages
    assert "constant" not in exp.features_in_ and exp.metrics_["n_train_rows"] == 1995
    gappy = test.iloc[:50].copy()
    gappy.loc[gappy.index[3], "s02"] = np.nan
    with pytest.warns(DataQualityWarning, match="reconstructed 1 missing value"):
        out = exp.predict(gappy)
    assert np.isfinite(out["score"]).all()


@pytest.mark.parametrize(
    "convert",
    [
        lambda t: t.dt.strftime("%Y-%m-%dT%H:%M:%S"),
        lambda t: t.astype("int64") // 10**9,
        lambda t: t.astype("int64") // 10**6,
        lambda t: t.astype("int64") // 10**3,
        lambda t: t.astype("int64"),
        lambda t: t.astype("int64").astype("float64"),
    ],
    ids=["iso", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "epoch_ns_float"],
)
def test_timestamp_formats(pca, data, convert):
    _, test = data
    test = test.iloc[:300]
    expected = pca.predict(test)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = pca.predict(test.assign(timestamp=convert(test["timestamp"])))
    pd.testing.assert_frame_equal(got, expected)
    fitted = FaultDetectionExperiment(spec()).fit(data[0].assign(timestamp=convert(data[0]["timestamp"])))
    assert fitted.threshold_ == pytest.approx(pca.threshold_)


def test_epoch_timestamps_outside_the_calendar_are_a_data_error(pca, data):
    test = data[1].iloc[:5]
    with pytest.raises(DataValidationError, match="outside the years 1677-2262") as caught:
        pca.predict(test.assign(timestamp=1e30))
    assert caught.value.field == "timestamp"


# ----------------------------------------------------------------- figures
def test_figures(pca, data):
    _, test = data
    for figures in (pca.figures(), pca.figures(test)):
        assert set(figures) == {"score", "contributions", "contributions_over_time", "t2_vs_spe", "correlation"}
        for figure in figures.values():
            assert isinstance(figure, go.Figure) and len(figure.data) > 0
    assert len(pca.preview_) <= 2000
    forest = FaultDetectionExperiment(spec("isolation_forest")).fit(data[0])
    figures = forest.figures(test)
    assert set(figures) == {"score", "contributions", "contributions_over_time", "correlation"}
    assert "latest alarm" in figures["contributions"].layout.title.text


def test_figures_shade_fault_windows_and_keep_the_threshold_readable(pca, data):
    _, test = data
    figures = pca.figures(test)
    windows = [s for s in figures["score"].layout.shapes if s.type == "rect"]
    n_episodes = int((np.diff(np.r_[0, test["fault"].to_numpy()]) == 1).sum())
    assert len(windows) == n_episodes > 0
    assert figures["score"].layout.xaxis.title.text == "timestamp"
    assert figures["contributions_over_time"].data[0].z.shape[0] == 15
    huge = test.head(200).copy()
    huge.loc[huge.index[50], "s01"] = 1e6  # scores many decades above the threshold: a log axis
    assert pca.figures(huge)["score"].layout.yaxis.type == "log"
    assert pca.figures(test.head(200))["score"].layout.yaxis.type == "linear"
