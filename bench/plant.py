"""Fault detection on the Tennessee Eastman plant (``tep-studio`` closed loop), beside plain peers.

Run: ``.venv/bin/python bench/plant.py`` (needs ``pip install 'experimenthub[bench]'``; see "Timing").

Protocol (fixed; seeds from 100 upward):

- ``tep_studio.ClosedLoopSimulation`` (Ricker's decentralized PI control, mode 1), control interval 0.01 h;
  a 24 h warm-up is simulated and dropped, then samples every 3 min (0.05 h).
- Normal runs: ``N_TRAIN`` for training, one for calibration, ``N_FRESH`` fresh runs to measure false alarms.
- Fault runs: each of IDV 1–20, onset at 8 h after the warm-up, ``RUN_HOURS`` recorded in total; rows from
  the onset on are labelled faulty.
- Variables: the 41 measurements and 12 manipulated variables; columns constant in the training runs are dropped.
- Generated runs are cached as CSV under ``~/.cache/experimenthub/tep`` (``--cache-dir``).

Every model sees the same rows: training runs then the calibration run, concatenated. The hub's models go
through ``FaultDetectionExperiment`` with the calibration run as their hold-out (``calibration_fraction``) and
their own threshold rule. The peers are plain scikit-learn, thresholded at the 99th percentile of their scores
on the calibration run: PCA (90 % variance) with SPE and with T², EllipticEnvelope (MinCovDet) and LOF
(``novelty=True``).

Per fault and pooled (IDV 3, 9, 15 excluded from the pool: known to be undetectable from these measurements):
ROC-AUC (fault-run rows against pre-onset and fresh-normal rows), detection rate (alarms among faulty rows),
false alarms on the pre-onset rows, mean detection delay (hours from the onset to the first alarm that starts
three alarms in a row), and sustained detection (alarm share over the last ``SUSTAIN_HOURS`` of each run).
``fresh FAR`` is the alarm rate on the fresh normal runs; the target is 1 %.

Timing, measured on this project's 2 shared cores (load average about 15 from other work): simulating the 26 runs
took 400 s with two worker processes (once; cached after), fitting and scoring every model 100 s (of which the
MinCovDet peer takes about 70 s). A first run is under 9 minutes; a cached run under 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

WARMUP_HOURS = 24.0
RUN_HOURS = 40.0
ONSET_HOURS = 8.0
SUSTAIN_HOURS = 24.0
SAMPLE_HOURS = 0.05
CONTROL_INTERVAL = 0.01
N_TRAIN, N_FRESH = 3, 2
FIRST_SEED = 100
FAULTS = tuple(range(1, 21))
UNDETECTABLE = (3, 9, 15)
TARGET = 0.01
# Root-cause variables named in the TEP literature (Downs & Vogel 1993; Chiang, Russell & Braatz 2001).
ROOT_CAUSES = {
    4: {"xmv_10", "xmeas_9"},  # reactor cooling water inlet temperature: its valve and the reactor temperature
    5: {"xmv_11", "xmeas_22"},  # condenser cooling water inlet temperature: its valve, its outlet temperature
    6: {"xmeas_1", "xmv_3"},  # A feed loss: A feed flow and its valve
    11: {"xmv_10", "xmeas_9"},  # reactor cooling water inlet temperature, random variation
    14: {"xmv_10", "xmeas_9", "xmeas_21"},  # reactor cooling water valve sticking
}
ROOT_ALARM_ROWS = 20  # the first alarm rows after the onset form the episode whose top-3 contributors are checked
HUB_MODELS = {
    "pca": {"name": "pca"},
    "dpca": {"name": "pca", "params": {"lags": 2}},
    "var_innovation": {"name": "var_innovation"},
}


# ------------------------------------------------------------------ data
def simulate(
    seed: int, idv: int, hours: float = RUN_HOURS, onset: float = ONSET_HOURS, warmup: float = WARMUP_HOURS
) -> pd.DataFrame:
    """One closed-loop run: warm-up dropped, 3-min samples; ``fault`` = 1 from the onset on (idv 0: normal)."""
    from tep_studio import ClosedLoopSimulation

    start = warmup + onset

    def schedule(t: float) -> np.ndarray:
        vector = np.zeros(28)
        if idv and t >= start:
            vector[idv - 1] = 1.0
        return vector

    every = round(SAMPLE_HOURS / CONTROL_INTERVAL)
    sim = ClosedLoopSimulation(control_interval=CONTROL_INTERVAL, horizon=warmup + hours)
    result = sim.run(seed=float(seed), disturbance_schedule=schedule, record_every=every)
    rows = [r for r in result.results if r.time > warmup + 1e-9]
    frame = pd.DataFrame(
        np.hstack([np.array([r.measurements for r in rows]), np.array([r.implemented_action for r in rows])]),
        columns=[f"xmeas_{i}" for i in range(1, 42)] + [f"xmv_{i}" for i in range(1, 13)],
    )
    hours_since = np.array([r.time for r in rows]) - warmup
    frame.insert(0, "hour", np.round(hours_since, 4))
    frame["fault"] = ((hours_since >= onset) & (idv > 0)).astype(int)
    frame.attrs["shutdown"] = bool(result.terminated)
    return frame


def _runs() -> list[tuple[str, int, int]]:
    """(name, seed, idv) of every run in the protocol."""
    seed = FIRST_SEED
    runs = []
    for i in range(N_TRAIN):
        runs.append((f"train{i}", seed, 0))
        seed += 1
    runs.append(("calib", seed, 0))
    seed += 1
    for i in range(N_FRESH):
        runs.append((f"fresh{i}", seed, 0))
        seed += 1
    for idv in FAULTS:
        runs.append((f"idv{idv:02d}", seed, idv))
        seed += 1
    return runs


def _generate(path: Path, seed: int, idv: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    simulate(seed, idv).to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def load_runs(cache: Path, workers: int, progress) -> dict[str, pd.DataFrame]:
    """Every run of the protocol, simulated once (in ``workers`` processes) and cached as CSV."""
    tag = f"w{WARMUP_HOURS:g}_h{RUN_HOURS:g}_o{ONSET_HOURS:g}_dt{CONTROL_INTERVAL:g}"
    paths = {name: cache / tag / f"{name}_seed{seed}.csv" for name, seed, _ in _runs()}
    todo = [(name, seed, idv) for name, seed, idv in _runs() if not paths[name].exists()]
    if todo:
        task = progress.add_task(f"simulating {len(todo)} TEP runs", total=len(todo))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_generate, paths[name], seed, idv) for name, seed, idv in todo]
            for future in as_completed(futures):
                future.result()
                progress.advance(task)
    return {name: pd.read_csv(path) for name, path in paths.items()}


# ---------------------------------------------------------------- peers
def _pca_peer(statistic: str) -> Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    def fit(X: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=0.9, svd_solver="full").fit(X)
        if statistic == "spe":
            return lambda Z: np.sum((Z - pca.inverse_transform(pca.transform(Z))) ** 2, axis=1)
        return lambda Z: np.sum(pca.transform(Z) ** 2 / pca.explained_variance_, axis=1)

    return fit


def _sklearn_peer(make: Callable[[], object], max_rows: int | None) -> Callable:
    def fit(X: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        if max_rows and len(X) > max_rows:
            X = X[np.sort(np.random.default_rng(0).choice(len(X), max_rows, replace=False))]
        estimator = make().fit(X)
        return lambda Z: -estimator.score_samples(Z)

    return fit


def peers() -> dict[str, Callable]:
    from sklearn.covariance import EllipticEnvelope
    from sklearn.neighbors import LocalOutlierFactor

    return {
        "sk_pca_spe": _pca_peer("spe"),
        "sk_pca_t2": _pca_peer("t2"),
        "sk_mcd": _sklearn_peer(lambda: EllipticEnvelope(random_state=0), 2000),
        "sk_lof": _sklearn_peer(lambda: LocalOutlierFactor(novelty=True, n_neighbors=20), None),
    }


# --------------------------------------------------------------- metrics
def _first_sustained_alarm(alarm: np.ndarray, run: int = 3) -> int | None:
    if len(alarm) < run:
        return None
    windows = np.convolve(alarm.astype(int), np.ones(run, dtype=int), mode="valid")
    hits = np.flatnonzero(windows == run)
    return int(hits[0]) if len(hits) else None


def fault_metrics(score: np.ndarray, alarm: np.ndarray, y: np.ndarray, hour: np.ndarray, normal: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    negatives = np.concatenate([score[~y], normal])
    auc = roc_auc_score(np.r_[np.zeros(len(negatives)), np.ones(y.sum())], np.r_[negatives, score[y]])
    post = alarm[y]
    first = _first_sustained_alarm(post)
    tail = hour >= hour[-1] - SUSTAIN_HOURS + 1e-9
    return {
        "roc_auc": float(auc),
        "detection_rate": float(post.mean()),
        "far_pre": float(alarm[~y].mean()),
        "delay_h": float(hour[y][first] - ONSET_HOURS) if first is not None else float("nan"),
        "sustained": float(alarm[tail & y].mean()) if (tail & y).any() else float("nan"),
    }


# ------------------------------------------------------------------ main
def evaluate(runs: dict[str, pd.DataFrame], progress) -> dict[str, dict]:
    """Fit every hub model and peer on the same rows; metrics per model and fault, plus pooled and fresh FAR."""
    from sklearn.metrics import roc_auc_score

    from framework.FaultDetection import FaultDetectionExperiment

    train = [runs[f"train{i}"] for i in range(N_TRAIN)]
    calib, fresh = runs["calib"], [runs[f"fresh{i}"] for i in range(N_FRESH)]
    candidates = [c for c in calib.columns if c.startswith(("xmeas_", "xmv_"))]
    stacked = pd.concat([*train, calib], ignore_index=True)
    features = [c for c in candidates if stacked[c].std() > 1e-9 * (abs(stacked[c].mean()) + 1)]
    fault_runs = {idv: runs[f"idv{idv:02d}"] for idv in FAULTS}
    fresh_frame = pd.concat(fresh, ignore_index=True)

    scorers: dict[str, Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray]]] = {}
    top3: dict[int, set[str]] = {}
    fit_seconds: dict[str, float] = {}
    task = progress.add_task("fitting models", total=len(HUB_MODELS) + 4)
    for name, model in HUB_MODELS.items():
        spec = {
            "features": features,
            "model": model,
            "threshold": {"false_alarm_rate": TARGET, "calibration_fraction": len(calib) / len(stacked)},
        }
        started = time.perf_counter()
        exp = FaultDetectionExperiment(spec).fit(stacked)
        fit_seconds[name] = time.perf_counter() - started

        def score_hub(frame: pd.DataFrame, exp=exp) -> tuple[np.ndarray, np.ndarray]:
            out = exp.predict(frame)
            alarm = out["is_anomaly"].to_numpy(bool)
            if "fault" in frame and frame["fault"].any():  # top-3 contributors of the first alarm episode
                rows = np.flatnonzero(alarm & frame["fault"].to_numpy(bool))[:ROOT_ALARM_ROWS]
                names = pd.Series(
                    [name.split(":")[0] for text in out["top_features"].iloc[rows] for name in text.split(",")]
                )
                top3[id(frame)] = set(names.value_counts().index[:3])
            return out["score"].to_numpy(), alarm

        scorers[name] = score_hub
        progress.advance(task)

    train_X = pd.concat(train, ignore_index=True)[features].to_numpy()
    center, scale = train_X.mean(axis=0), train_X.std(axis=0)
    calib_Z = (calib[features].to_numpy() - center) / scale
    for name, fit in peers().items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score_fn = fit((train_X - center) / scale)
        threshold = float(np.quantile(score_fn(calib_Z), 1 - TARGET))
        fit_seconds[name] = time.perf_counter() - started

        def score_peer(frame: pd.DataFrame, f=score_fn, t=threshold) -> tuple[np.ndarray, np.ndarray]:
            s = f((frame[features].to_numpy() - center) / scale)
            return s, s > t

        scorers[name] = score_peer
        progress.advance(task)

    results: dict[str, dict] = {}
    task = progress.add_task("scoring", total=len(scorers))
    for name, score_fn in scorers.items():
        normal_score, normal_alarm = score_fn(fresh_frame)
        per_fault, pooled_pos, pooled_neg = {}, [], [normal_score]
        for idv, frame in fault_runs.items():
            score, alarm = score_fn(frame)
            y = frame["fault"].to_numpy(bool)
            per_fault[idv] = fault_metrics(score, alarm, y, frame["hour"].to_numpy(), normal_score)
            if idv in ROOT_CAUSES and id(frame) in top3:
                per_fault[idv]["root_cause_top3"] = bool(top3.pop(id(frame)) & ROOT_CAUSES[idv])
            if idv not in UNDETECTABLE:
                pooled_pos.append(score[y])
                pooled_neg.append(score[~y])
        pos, neg = np.concatenate(pooled_pos), np.concatenate(pooled_neg)
        kept = [m for idv, m in per_fault.items() if idv not in UNDETECTABLE]
        pooled = {
            "roc_auc": float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos])),
            "detection_rate": float(np.mean([m["detection_rate"] for m in kept])),
            "far_pre": float(np.mean([m["far_pre"] for m in kept])),
            "delay_h": float(np.nanmean([m["delay_h"] for m in kept])),
            "sustained": float(np.nanmean([m["sustained"] for m in kept])),
        }
        hits = [m["root_cause_top3"] for m in per_fault.values() if "root_cause_top3" in m]
        results[name] = {
            "root_cause": f"{sum(hits)}/{len(ROOT_CAUSES)}" if hits else "–",
            "faults": per_fault,
            "pooled": pooled,
            "fresh_far": float(normal_alarm.mean()),
            "fit_s": fit_seconds[name],
        }
        progress.advance(task)
    return results


def render(results: dict[str, dict], console) -> None:
    from rich.table import Table

    table = Table(title=f"Tennessee Eastman closed loop: per fault and pooled (target false-alarm rate {TARGET:.0%})")
    for column in ("model", "IDV", "ROC-AUC", "det. rate", "FAR pre-onset", "FAR fresh", "delay h", "sustained"):
        table.add_column(column, justify="left" if column in ("model", "IDV") else "right")

    def fmt(value: float, digits: int = 3) -> str:
        return "–" if value != value else f"{value:.{digits}f}"

    for name, res in results.items():
        for idv, m in res["faults"].items():
            label = f"{idv}" + (" (undetectable)" if idv in UNDETECTABLE else "")
            table.add_row(
                name,
                label,
                fmt(m["roc_auc"]),
                fmt(m["detection_rate"]),
                fmt(m["far_pre"]),
                "",
                fmt(m["delay_h"], 2),
                fmt(m["sustained"]),
            )
        p = res["pooled"]
        table.add_row(
            f"[bold]{name}[/]",
            "[bold]pooled[/]",
            fmt(p["roc_auc"]),
            fmt(p["detection_rate"]),
            fmt(p["far_pre"]),
            fmt(res["fresh_far"]),
            fmt(p["delay_h"], 2),
            fmt(p["sustained"]),
            end_section=True,
        )
    console.print(table)
    summary = Table(
        title="Pooled summary (excluding IDV 3, 9, 15); root cause: faults whose literature root-cause variable is "
        f"among the top-3 contributors of the first alarm episode (IDV {', '.join(map(str, ROOT_CAUSES))})"
    )
    columns = (
        "model",
        "ROC-AUC",
        "det. rate",
        "FAR pre-onset",
        "FAR fresh",
        "delay h",
        "sustained",
        "root cause",
        "fit s",
    )
    for column in columns:
        summary.add_column(column, justify="left" if column == "model" else "right")
    for name, res in results.items():
        p = res["pooled"]
        summary.add_row(
            name,
            fmt(p["roc_auc"]),
            fmt(p["detection_rate"]),
            fmt(p["far_pre"]),
            fmt(res["fresh_far"]),
            fmt(p["delay_h"], 2),
            fmt(p["sustained"]),
            res["root_cause"],
            fmt(res["fit_s"], 1),
        )
    console.print(summary)


def main() -> None:
    from rich.console import Console
    from rich.progress import Progress

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "experimenthub" / "tep")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 120)
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        runs = load_runs(args.cache_dir, args.workers, progress)
        simulated = time.perf_counter()
        results = evaluate(runs, progress)
    render(results, console)
    best_peer = max((r for n, r in results.items() if n.startswith("sk_")), key=lambda r: r["pooled"]["roc_auc"])
    line = " ".join(
        f"{n}_auc={r['pooled']['roc_auc']:.3f} {n}_fresh_far={r['fresh_far']:.4f}" for n, r in results.items()
    )
    console.print(f"data {simulated - started:.0f} s, models {time.perf_counter() - simulated:.0f} s")
    console.print(f"RESULT plant best_peer_auc={best_peer['pooled']['roc_auc']:.3f} {line}", soft_wrap=True)


if __name__ == "__main__":
    main()
