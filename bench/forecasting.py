"""Forecasting benchmark: the catalog's models vs plain statsmodels ETS and seasonal naive, in one run.

Each series is split into a training part and a holdout of ``h`` points; every model is fitted on the
training part and scored by MASE (scaled by the training set's seasonal-naive MAE) and sMAPE on the holdout.
The references run straight on numpy/statsmodels, without any ExperimentHub code:

- ``sm_ets``: statsmodels ``ETSModel``, a grid over error, trend, damping and season, chosen by AICc;
- ``sm_snaive``: repeat the last season.

``prophet`` (the optional extra) joins the table when it is installed; its one-off import (~1 s) is done before
the timings, like statsforecast's.

Run: ``.venv/bin/python bench/forecasting.py`` (about a minute on two cores). The last line reads
``RESULT forecasting auto_vs_seasonal_naive_mase=<worst auto/seasonal-naive MASE ratio over the seasonal series>
auto_vs_best_mase=<auto / best single model, on the geometric mean over series of MASE relative to seasonal naive>
auto_fit_s_1000h=<wall seconds of TimeSeriesExperiment.fit with auto>
auto_vs_plain_statsforecast_fit=<that / one plain fit each of AutoETS, AutoCES, AutoTheta, AutoARIMA, same run>``.
The public-series panel with the statsforecast peers is ``bench/forecast_panel.py``.
"""

from __future__ import annotations

import importlib.util
import itertools
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

OURS = ("seasonal_naive", "ets", "arima", "theta", "ces", "stl", "combination", "auto")
OPTIONAL = tuple(name for name in ("prophet",) if importlib.util.find_spec(name) is not None)
HOURLY = "generator+anoms (h)"  # make_series(n=1000, seed=0): also the series of the auto fit-time check


def load_series() -> list[tuple[str, np.ndarray, int, int]]:
    """(name, values, seasonal period, horizon) for the series shipped with statsmodels and the generator."""
    from statsmodels.datasets import co2, elec_equip, macrodata, nile, sunspots

    from framework.datasets.series import make_series

    weekly = co2.load_pandas().data["co2"].interpolate().to_numpy()[-416:]
    return [
        ("elec_equip (M)", elec_equip.load().data.iloc[:, 0].to_numpy(), 12, 12),
        ("co2 (W, last 8y)", weekly, 52, 52),
        ("macro realgdp (Q, SA)", macrodata.load_pandas().data["realgdp"].to_numpy(), 1, 8),  # seasonally adjusted
        ("generator (h)", make_series(n=1000, anomalies=(), seed=7)["value"].to_numpy(), 24, 24),
        (HOURLY, make_series(n=1000, seed=0)["value"].to_numpy(), 24, 24),
        ("sunspots (Y)", sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(), 1, 10),
        ("nile (Y)", nile.load_pandas().data["volume"].to_numpy(), 1, 10),
    ]


def mase_smape(train: np.ndarray, test: np.ndarray, forecast: np.ndarray, m: int) -> tuple[float, float]:
    lag = m if len(train) > m else 1
    scale = np.mean(np.abs(train[lag:] - train[:-lag]))
    mase = float(np.mean(np.abs(test - forecast)) / scale)
    smape = float(100 * np.mean(2 * np.abs(test - forecast) / (np.abs(test) + np.abs(forecast))))
    return mase, smape


def plain_snaive(train: np.ndarray, h: int, m: int) -> np.ndarray:
    lag = m if len(train) > m else 1
    return train[-lag:][np.arange(h) % lag]


def plain_sm_ets(train: np.ndarray, h: int, m: int) -> np.ndarray:
    """statsmodels ETSModel over the usual grid, the lowest AICc wins."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    positive = bool(np.all(train > 0))
    errors = ("add", "mul") if positive else ("add",)
    seasons = (None, "add", "mul") if m > 1 and positive else ((None, "add") if m > 1 else (None,))
    best, best_aicc = None, np.inf
    for error, trend, damped, season in itertools.product(errors, (None, "add"), (False, True), seasons):
        if damped and trend is None:
            continue
        try:
            fit = ETSModel(
                train,
                error=error,
                trend=trend,
                damped_trend=damped,
                seasonal=season,
                seasonal_periods=m if season else None,
            ).fit(disp=False, maxiter=200)
        except Exception:  # a combination the data cannot support
            continue
        if np.isfinite(fit.aicc) and fit.aicc < best_aicc:
            best, best_aicc = fit, fit.aicc
    return np.asarray(best.forecast(h))


def plain_statsforecast_seconds(y: np.ndarray, m: int) -> dict[str, float]:
    """Wall seconds of one plain statsforecast fit each (ARIMA with the bounded search auto's candidate uses)."""
    from statsforecast.models import AutoARIMA, AutoCES, AutoETS, AutoTheta

    models = {
        "AutoETS": AutoETS(season_length=m),
        "AutoCES": AutoCES(season_length=m),
        "AutoTheta": AutoTheta(season_length=m),
        "AutoARIMA(bounded)": AutoARIMA(
            season_length=m, max_p=2, max_q=2, max_P=1, max_Q=1, max_order=6, nmodels=10, approximation=True
        ),
    }
    seconds = {}
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(y)
        seconds[name] = time.perf_counter() - start
    return seconds


def main() -> None:
    from framework.datasets.series import make_series
    from framework.models.forecasters import make_forecaster
    from framework.TimeSeriesAnalysis import TimeSeriesExperiment

    make_forecaster("ets").fit(np.arange(30.0))  # warm the statsforecast import outside the timings
    for name in OPTIONAL:  # and prophet's (cmdstanpy, holidays...)
        start = time.perf_counter()
        make_forecaster(name).fit(np.arange(30.0))
        print(f"{name}: first fit with the import {time.perf_counter() - start:.2f} s", flush=True)

    rows = []
    for name, y, m, h in load_series():
        train, test = y[:-h], y[-h:]
        for model in (*OURS, *OPTIONAL, "sm_ets", "sm_snaive"):
            start = time.perf_counter()
            if model == "sm_ets":
                forecast = plain_sm_ets(train, h, m)
            elif model == "sm_snaive":
                forecast = plain_snaive(train, h, m)
            else:
                forecast = make_forecaster(model, season_length=m, horizon=h).fit(train).forecast(h, 0.95)[0]
            seconds = time.perf_counter() - start
            mase, smape = mase_smape(train, test, forecast, m)
            rows.append({"series": name, "m": m, "model": model, "mase": mase, "smape": smape, "fit_s": seconds})
        done = pd.DataFrame([r for r in rows if r["series"] == name]).set_index("model")
        print(f"{name:22s} " + "  ".join(f"{k}={v:.3f}" for k, v in done["mase"].items()), flush=True)

    table = pd.DataFrame(rows)
    for metric in ("mase", "smape", "fit_s"):
        print(f"\n{metric} per model and series")
        print(table.pivot(index="series", columns="model", values=metric).round(3).to_string())
    mase = table.pivot(index="series", columns="model", values="mase")
    relative = mase.div(mase["sm_snaive"], axis=0)  # scale-free: one bad series cannot dominate
    geomean = np.exp(np.log(relative).mean()).sort_values()
    print("\ngeometric mean over series of MASE relative to seasonal naive\n" + geomean.round(3).to_string())
    singles = geomean.drop(["auto", "sm_snaive"])
    best_single = singles.index[0]
    auto_vs_best = float(geomean["auto"] / singles.iloc[0])
    seasonal = mase[mase.index.isin(table.loc[table["m"] > 1, "series"])]
    ratios = seasonal["auto"] / seasonal["sm_snaive"]
    print("\nauto / seasonal naive MASE on seasonal series\n" + ratios.round(3).to_string())
    print(
        f"best single model (geometric mean relative MASE): {best_single} {singles.iloc[0]:.3f}; "
        f"auto {geomean['auto']:.3f}"
    )

    hourly = make_series(n=1000, seed=0)
    wall, cpu = time.perf_counter(), time.process_time()
    experiment = TimeSeriesExperiment({"horizon": 24}).fit(hourly)
    auto_seconds, auto_cpu = time.perf_counter() - wall, time.process_time() - cpu
    sm_seconds = table.set_index(["series", "model"]).loc[(HOURLY, "sm_ets"), "fit_s"]
    sf_seconds = plain_statsforecast_seconds(hourly["value"].to_numpy(), 24)
    print(
        "plain statsforecast fits on the same 1000 points: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in sf_seconds.items())
        + f"; together {sum(sf_seconds.values()):.2f} s; auto / that {auto_seconds / sum(sf_seconds.values()):.2f}"
    )
    print(
        f"\nauto on 1000 hourly points (TimeSeriesExperiment.fit, holdout and all): {auto_seconds:.2f} s wall, "
        f"{auto_cpu:.2f} s CPU ({experiment.model_description_}); plain statsmodels ETS grid on the same series: "
        f"{sm_seconds:.2f} s; ratio auto/sm_ets {auto_seconds / sm_seconds:.2f}"
    )
    print(
        f"RESULT forecasting auto_vs_seasonal_naive_mase={ratios.max():.3f} "
        f"auto_vs_best_mase={auto_vs_best:.3f} auto_fit_s_1000h={auto_seconds:.2f} "
        f"auto_vs_plain_statsforecast_fit={auto_seconds / sum(sf_seconds.values()):.2f}"
    )


if __name__ == "__main__":
    main()
