"""Fault-detection predict path: ``Experiment.predict`` beside the plain library doing the same scoring, same rows.

Run: ``.venv/bin/python bench/predict_path.py`` (about a minute on 2 cores); ``--smoke`` for a small quick run.

``make_process`` normal rows (100k training, 100k scored, 50 sensors, 5 latent factors, seed 0), timestamp in the
spec. For each model, in the same run, the median wall time of ``--runs`` repetitions of:

- **bare**: the reference, no ExperimentHub code in the timed call.
  ``pca``: scikit-learn ``StandardScaler.transform`` of the feature columns, ``PCA.transform`` and
  ``inverse_transform`` (same component count, fitted on the same rows), T², SPE and the combined index.
  ``var_innovation``: numpy (and ``scipy.signal.lfilter``) on the fitted model's own arrays: standardize, lagged
  regressors, VAR innovations, the two PCA monitors' combined indices, the innovations' EWMA T², the largest
  scaled index. The bench checks that it gives our scores (to rounding).
- **predict (all)**: ``FaultDetectionExperiment.predict`` with ``contributions: all`` (the default): score,
  threshold, alarms, top features of every row, missing readings, sensor faults.
- **predict (alarms)**: the same with ``contributions: alarms``: top features only for the rows that alarm
  (about 1 % of normal rows).

The ratio is our time over the bare reference's (lower is better). The last line is machine-readable::

    RESULT predict_path pca_alarms_vs_bare=… pca_all_vs_bare=… var_innovation_alarms_vs_bare=… …
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from framework.datasets.process import make_process
from framework.FaultDetection import FaultDetectionExperiment
from framework.models.mspc import PCAMSPC

MODELS = ("pca", "var_innovation")
PATHS = ("bare", "predict (all)", "predict (alarms)")


def median_seconds(calls: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median wall time of ``runs`` calls of each, after one warm-up call; the calls take turns, so that a
    change in the load of the (shared) machine hits them alike."""
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()
    for _ in range(runs):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def bare_pca(exp: FaultDetectionExperiment, train: pd.DataFrame) -> Callable[[pd.DataFrame], np.ndarray]:
    """scikit-learn StandardScaler + PCA fitted on the experiment's fitting rows: the combined index per row."""
    features, detector = exp.features_in_, exp.detector_
    assert isinstance(detector, PCAMSPC)
    fit_rows = train[features].iloc[: int(exp.metrics_["n_fit_rows"])]
    scaler = StandardScaler().fit(fit_rows)
    pca = PCA(n_components=detector.n_components_, svd_solver="full").fit(scaler.transform(fit_rows))
    t2_limit, spe_limit = detector.t2_limit_, detector.spe_limit_

    def score(df: pd.DataFrame) -> np.ndarray:
        Z = scaler.transform(df[features])
        scores = pca.transform(Z)
        t2 = np.sum(scores**2 / pca.explained_variance_, axis=1)
        spe = np.sum((Z - pca.inverse_transform(scores)) ** 2, axis=1)
        return spe / spe_limit + t2 / t2_limit

    return score


def bare_var(exp: FaultDetectionExperiment) -> Callable[[pd.DataFrame], np.ndarray]:
    """The var_innovation score in plain numpy/scipy from the fitted model's arrays."""
    features, center, scale, d = exp.features_in_, exp.center_, exp.scale_, exp.detector_
    p, lam = d.lags_, d.ewma

    def combined(E: np.ndarray, monitor: PCAMSPC) -> np.ndarray:
        E = E - monitor.mean_
        scores = E @ monitor.components_
        t2 = np.sum(scores**2 / monitor.eigenvalues_, axis=1)
        spe = np.sum((E - scores @ monitor.components_.T) ** 2, axis=1)
        return spe / monitor.spe_limit_ + t2 / monitor.t2_limit_

    def score(df: pd.DataFrame) -> np.ndarray:
        Z = (df[features].to_numpy(dtype=np.float64) - center) / scale
        n = len(Z)
        padded = np.vstack([np.repeat(Z[:1], p, axis=0), Z])
        R = np.hstack([padded[p - k : p - k + n] for k in range(1, p + 1)])
        E = Z - R @ d.coef_ - d.intercept_
        w = lfilter([lam], [1.0, lam - 1.0], E, axis=0)
        shift = np.sum((w @ d.ewma_precision_) * w, axis=1)
        parts = (combined(E, d.innovation_), combined(Z, d.level_), shift)
        return np.max([part / s for part, s in zip(parts, d.scales_, strict=True)], axis=0)

    return score


def measure(rows: int, sensors: int, runs: int) -> dict[tuple[str, str], float]:
    train, test = make_process(n_normal=rows, n_test=rows, n_sensors=sensors, n_factors=5, seed=0, faults=())
    results: dict[tuple[str, str], float] = {}
    for model in MODELS:
        exp = FaultDetectionExperiment({"model": {"name": model}, "timestamp": "timestamp"}).fit(train)
        lean = copy.copy(exp)
        lean.spec = exp.spec.model_copy(update={"contributions": "alarms"})
        bare = bare_pca(exp, train) if model == "pca" else bare_var(exp)
        ours = exp.predict(test)
        np.testing.assert_allclose(bare(test), ours["score"], rtol=1e-6)  # the same work, the same scores
        alarms = lean.predict(test)
        assert alarms["is_anomaly"].equals(ours["is_anomaly"])
        assert (alarms["top_features"] != "").equals(alarms["is_anomaly"])
        calls = {
            "bare": lambda bare=bare: bare(test),
            "predict (all)": lambda exp=exp: exp.predict(test),
            "predict (alarms)": lambda lean=lean: lean.predict(test),
        }
        results |= {(model, path): seconds for path, seconds in median_seconds(calls, runs).items()}
        results[model, "alarm rate"] = float(ours["is_anomaly"].mean())
    return results


def main(argv: list[str] | None = None) -> dict[tuple[str, str], float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a small quick run (5k rows, 12 sensors, 2 runs)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sensors", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    rows, sensors, runs = (5_000, 12, 2) if args.smoke else (args.rows, args.sensors, args.runs)
    warnings.simplefilter("ignore")
    results = measure(rows, sensors, runs)
    print(f"predict {rows:,} rows x {sensors} sensors; median of {runs} runs; ratio = time / bare")
    print(f"  {'model':<16}{'path':<20}{'seconds':>9}{'rows/s':>13}{'vs bare':>9}")
    for model in MODELS:
        bare = results[model, "bare"]
        for path in PATHS:
            seconds = results[model, path]
            print(f"  {model:<16}{path:<20}{seconds:>9.3f}{rows / seconds:>13,.0f}{seconds / bare:>9.2f}")
        print(f"  {model:<16}{'(alarm rate)':<20}{results[model, 'alarm rate']:>9.4f}")
    summary = " ".join(
        f"{model}_{path}_vs_bare={results[model, 'predict (' + path + ')'] / results[model, 'bare']:.2f}"
        for model in MODELS
        for path in ("alarms", "all")
    )
    print(f"RESULT predict_path {summary}")
    return results


if __name__ == "__main__":
    main()
