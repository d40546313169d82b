"""Plotly figures of a forecast: forecast, decomposition, residuals and cv_errors, from plain data.

>>> figs = build_figures(ForecastFigureData(target="load", timestamp="ts", history=h, future=f, ...))
>>> figs["forecast"].show()

The forecast figure opens on the recent history and the horizon (``RECENT_SEASONS`` seasons or
``RECENT_HORIZONS`` horizons, whichever is longer); the whole history is in the figure, one zoom out away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_POINTS", "ForecastFigureData", "build_figures"]

MAX_POINTS = 2000  # figures show at most this many recent steps
RECENT_SEASONS = 4
RECENT_HORIZONS = 3


@dataclass(frozen=True)
class ForecastFigureData:
    """What the figures show. ``history``/``scored``: timestamp, actual, forecast, residual, is_anomaly;
    ``future``: timestamp, forecast, lower, upper; ``cv_scores``: candidate -> MASE per origin."""

    target: str
    timestamp: str
    history: pd.DataFrame
    future: pd.DataFrame
    interval: float
    model_description: str
    seasonal_period: int
    n_total: int
    sigma: float
    scored: pd.DataFrame | None = None
    cv_scores: dict[str, list[float]] = field(default_factory=dict)


def build_figures(data: ForecastFigureData) -> dict[str, Any]:
    """Named figures: forecast, decomposition, residuals and (when candidates were cross-validated) cv_errors."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    history, future, target = data.history, data.future, data.target
    scored = data.scored if data.scored is not None else history
    figures: dict[str, Any] = {}

    fig = go.Figure()
    fig.add_scatter(x=history["timestamp"], y=history["actual"], name="history", mode="lines", line={"color": "#444"})
    if data.scored is not None:
        fig.add_scatter(x=scored["timestamp"], y=scored["actual"], name="new data", mode="lines")
        fig.add_scatter(x=scored["timestamp"], y=scored["forecast"], name="one-step forecast", mode="lines")
    band_x = pd.concat([future["timestamp"], future["timestamp"][::-1]])
    band_y = pd.concat([future["upper"], future["lower"][::-1]])
    fig.add_scatter(x=band_x, y=band_y, fill="toself", name=f"{data.interval:.0%} interval", line={"width": 0})
    fig.add_scatter(x=future["timestamp"], y=future["forecast"], name="forecast", mode="lines")
    flagged = scored[scored["is_anomaly"]]
    fig.add_scatter(
        x=flagged["timestamp"], y=flagged["actual"], name="anomaly", mode="markers", marker={"color": "red", "size": 8}
    )
    recent = max(RECENT_SEASONS * max(data.seasonal_period, 1), RECENT_HORIZONS * len(future), 30)
    start = history["timestamp"].iloc[max(0, len(history) - recent)]
    end = future["timestamp"].iloc[-1] if len(future) else history["timestamp"].iloc[-1]
    fig.update_layout(
        title=f"{target}: {data.model_description} (recent history and horizon; zoom out for all)",
        xaxis={"title": data.timestamp, "range": [start, end]},
        yaxis_title=target,
    )
    figures["forecast"] = fig
    figures["decomposition"] = _decomposition(data, make_subplots)

    resid = history["residual"].to_numpy()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("one-step residuals", "histogram"), column_widths=[0.7, 0.3])
    fig.add_scatter(x=history["timestamp"], y=resid, mode="lines", name="residual", row=1, col=1)
    fig.add_histogram(x=resid[np.isfinite(resid)], name="count", row=1, col=2)
    fig.update_xaxes(title_text=data.timestamp, row=1, col=1)
    fig.update_yaxes(title_text=f"{target} - forecast", row=1, col=1)
    fig.update_xaxes(title_text=f"{target} - forecast", row=1, col=2)
    fig.update_layout(title=f"{target}: one-step residuals (robust sigma {data.sigma:.3g})", showlegend=False)
    figures["residuals"] = fig

    if data.cv_scores:
        fig = go.Figure()
        names = list(data.cv_scores)
        fig.add_bar(x=names, y=[float(np.mean(data.cv_scores[n])) for n in names], name="mean MASE")
        folds = min(len(v) for v in data.cv_scores.values())
        for fold in range(folds):
            fig.add_scatter(
                x=names,
                y=[data.cv_scores[n][fold] for n in names],
                mode="markers",
                name=f"origin {fold + 1}",
                marker={"color": "#888", "size": 5},
                showlegend=fold == 0,
            )
        fig.update_layout(
            title=f"{target}: rolling-origin MASE per candidate over {folds} origins (lower is better)",
            yaxis_title="MASE",
            xaxis_title="candidate",
        )
        figures["cv_errors"] = fig
    return figures


def _decomposition(data: ForecastFigureData, make_subplots: Any) -> Any:
    """STL (robust) when the series has a seasonal period and two full cycles; otherwise a moving-average trend."""
    y, index, m = data.history["actual"].to_numpy(), data.history["timestamp"], data.seasonal_period
    if m >= 2 and len(y) >= 2 * m + 1:
        from statsmodels.tsa.seasonal import STL

        parts = STL(y, period=m, robust=True).fit()
        trend, seasonal, resid = parts.trend, parts.seasonal, parts.resid
    else:
        trend = pd.Series(y).rolling(max(3, len(y) // 20), center=True, min_periods=1).mean().to_numpy()
        seasonal, resid = np.zeros_like(y), y - trend
    names = ("observed", "trend", f"seasonal (period {m})", "residual")
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.06)
    for row, (name, values) in enumerate(zip(names, (y, trend, seasonal, resid), strict=True), start=1):
        fig.add_scatter(x=index, y=values, mode="lines", name=name, row=row, col=1, line={"width": 1})
        fig.update_yaxes(title_text=data.target if row < 3 else "", row=row, col=1)
    fig.update_xaxes(title_text=data.timestamp, row=4, col=1)
    fig.update_layout(
        title=f"{data.target}: STL decomposition (last {len(y)} of {data.n_total} steps)",
        showlegend=False,
        height=900,
    )
    return fig
