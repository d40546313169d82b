"""Fault detection: quality per fault type and throughput, beside a plain scikit-learn IsolationForest.

Run: ``.venv/bin/python bench/fault_detection.py`` (about a minute on 2 cores).

1. Quality. ``make_process`` (24 sensors, 3 latent factors, seed 0): 20000 normal training rows, then for each
   fault type a 4000-row test stretch with 10 episodes of 200 rows. Every catalog detector runs through
   ``FaultDetectionExperiment`` at its defaults (threshold calibrated to 1% false alarms on the last 20% of
   the training rows). The reference is ``sklearn.ensemble.IsolationForest`` used directly: fitted on the
   same first 80% of rows, thresholded at the 99th percentile of its scores on the last 20%, scored with
   the metric helper below (no ExperimentHub code).
2. Speed. 100k training rows and 100k scoring rows of 50 sensors: ``fit`` and ``predict`` wall time per
   detector, beside the plain library doing the core work (IsolationForest fit/score_samples; scikit-learn
   PCA fit and T²/SPE from transform/inverse_transform).

The last line is machine-readable::

    RESULT fault_detection pca_step_auc=… pca_drift_auc=… pca_far=… pca_predict_rows_per_s=… pca_auc_vs_iforest=…

``pca_far`` is the false-alarm rate on the test stretches' normal rows; ``pca_auc_vs_iforest`` is the mean
ROC-AUC of ``pca`` over the four fault types divided by that of the plain IsolationForest.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from framework.datasets.process import FAULT_TYPES, make_process
from framework.FaultDetection import FaultDetectionExperiment
from framework.models.detectors import DETECTORS

SEED = 0
SPEC = {"timestamp": "timestamp", "label": "fault"}


def episode_metrics(y: np.ndarray, score: np.ndarray, alarm: np.ndarray) -> dict[str, float]:
    """The reference's metrics, written independently of FaultDetectionExperiment.evaluate."""
    starts = [i for i in range(len(y)) if y[i] and (i == 0 or not y[i - 1])]
    delays = []
    for start in starts:
        end = start
        while end < len(y) and y[end]:
            end += 1
        hits = np.flatnonzero(alarm[start:end])
        if len(hits):
            delays.append(hits[0])
    return {
        "detection_rate": len(delays) / len(starts),
        "false_alarm_rate": float(alarm[~y].mean()),
        "roc_auc": float(roc_auc_score(y, score)),
        "mean_detection_delay_rows": float(np.mean(delays)) if delays else float("nan"),
    }


def quality() -> dict[tuple[str, str], dict[str, float]]:
    train, _ = make_process(n_normal=20_000, n_test=0, seed=SEED)
    tests = {fault: make_process(n_normal=20_000, n_test=4000, seed=SEED, faults=(fault,))[1] for fault in FAULT_TYPES}
    sensors = [c for c in train.columns if c != "timestamp"]
    results: dict[tuple[str, str], dict[str, float]] = {}
    for name in DETECTORS:
        start = time.perf_counter()
        exp = FaultDetectionExperiment({"model": {"name": name}, **SPEC}).fit(train)
        for fault, test in tests.items():
            results[name, fault] = exp.evaluate(test)
        print(f"  {name:<20} fitted and evaluated in {time.perf_counter() - start:5.1f} s")

    n_fit = int(len(train) * 0.8)
    forest = IsolationForest(random_state=0).fit(train[sensors].iloc[:n_fit])
    threshold = np.quantile(-forest.score_samples(train[sensors].iloc[n_fit:]), 0.99)
    for fault, test in tests.items():
        score = -forest.score_samples(test[sensors])
        results["sklearn IsolationForest", fault] = episode_metrics(
            test["fault"].to_numpy(bool), score, score > threshold
        )
    return results


def print_quality(results: dict[tuple[str, str], dict[str, float]]) -> None:
    names = list(dict.fromkeys(name for name, _ in results))
    columns = [
        ("roc_auc", "ROC-AUC", "{:.3f}"),
        ("detection_rate", "detected", "{:.2f}"),
        ("false_alarm_rate", "FAR", "{:.4f}"),
        ("mean_detection_delay_rows", "delay rows", "{:.1f}"),
    ]
    for key, title, fmt in columns:
        print(f"\n{title} by fault type")
        print(f"  {'detector':<24}" + "".join(f"{fault:>10}" for fault in FAULT_TYPES))
        for name in names:
            cells = "".join(f"{fmt.format(results[name, fault][key]):>10}" for fault in FAULT_TYPES)
            print(f"  {name:<24}{cells}")


def speed() -> dict[str, float]:
    train, test = make_process(n_normal=100_000, n_test=100_000, n_sensors=50, n_factors=5, seed=SEED, faults=())
    sensors = [c for c in train.columns if c != "timestamp"]
    rows_per_s = {}
    print(f"\nspeed: fit on {len(train):,} rows, predict {len(test):,} rows, {len(sensors)} sensors")
    print(f"  {'detector':<36}{'fit s':>8}{'predict s':>11}{'(cpu s)':>9}{'rows/s':>12}")

    def report(label: str, fit_s: float, predict: tuple[float, float]) -> None:
        rows_per_s[label] = len(test) / predict[0]
        print(f"  {label:<36}{fit_s:>8.2f}{predict[0]:>11.2f}{predict[1]:>9.2f}{rows_per_s[label]:>12,.0f}")

    def timed(call: Callable[[], object]) -> tuple[float, float]:
        """Wall and CPU seconds of ``call``, the best of two runs (the machine may be shared)."""
        runs = []
        for _ in range(2):
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            runs.append((time.perf_counter() - wall, time.process_time() - cpu))
        return min(runs)

    for name in DETECTORS:
        exp = FaultDetectionExperiment({"model": {"name": name}, "timestamp": "timestamp"})
        start = time.perf_counter()
        exp.fit(train)
        fitted = time.perf_counter()
        report(name, fitted - start, timed(lambda exp=exp: exp.predict(test)))

    X, Q = train[sensors].to_numpy(), test[sensors].to_numpy()
    start = time.perf_counter()
    forest = IsolationForest(random_state=0).fit(X)
    fitted = time.perf_counter()
    report("plain sklearn IsolationForest", fitted - start, timed(lambda: forest.score_samples(Q)))

    start = time.perf_counter()
    mean, std = X.mean(axis=0), X.std(axis=0)
    pca = PCA(n_components=0.9, svd_solver="full").fit((X - mean) / std)
    fitted = time.perf_counter()

    def t2_spe() -> tuple[np.ndarray, np.ndarray]:
        Z = (Q - mean) / std
        scores = pca.transform(Z)
        return np.sum(scores**2 / pca.explained_variance_, axis=1), np.sum((Z - pca.inverse_transform(scores)) ** 2, 1)

    report("plain sklearn PCA (T², SPE only)", fitted - start, timed(t2_spe))
    return rows_per_s


def main() -> None:
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    print("quality: 20000 normal training rows, 4000 test rows per fault type (24 sensors)")
    results = quality()
    print_quality(results)
    rows_per_s = speed()

    def mean_auc(name: str) -> float:
        return float(np.mean([results[name, fault]["roc_auc"] for fault in FAULT_TYPES]))

    ratio = mean_auc("pca") / mean_auc("sklearn IsolationForest")
    print(
        f"\nmean ROC-AUC over fault types: pca {mean_auc('pca'):.3f}, plain IsolationForest "
        f"{mean_auc('sklearn IsolationForest'):.3f} (ratio {ratio:.2f})"
    )
    print(
        f"pca predict throughput vs plain sklearn PCA T²/SPE: "
        f"{rows_per_s['pca'] / rows_per_s['plain sklearn PCA (T², SPE only)']:.2f}x"
    )
    print(f"total {time.perf_counter() - started:.0f} s")
    print(
        "RESULT fault_detection"
        f" pca_step_auc={results['pca', 'step']['roc_auc']:.4f}"
        f" pca_drift_auc={results['pca', 'drift']['roc_auc']:.4f}"
        f" pca_far={results['pca', 'step']['false_alarm_rate']:.4f}"
        f" pca_predict_rows_per_s={rows_per_s['pca']:.0f}"
        f" pca_auc_vs_iforest={ratio:.3f}"
    )


if __name__ == "__main__":
    main()
