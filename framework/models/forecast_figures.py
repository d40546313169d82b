"""Plotly figures of a fitted ``TimeSeriesExperiment``: forecast, decomposition, residuals, cv_errors.

>>> figs = build_figures(experiment)        # or build_figures(experiment, new_df) to show scored data
>>> figs["forecast"].show()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from framework.TimeSeriesAnalysis import TimeSeriesExperiment

__all__ = ["MAX_POINTS", "build_figures"]

MAX_POINTS = 2000  # figures show at most this many recent steps


def build_figures(exp: TimeSeriesExperiment, df: pd.DataFrame | None = None) -> dict[str, Any]:
    """Named figures of the fit; with ``df``, the forecast figure shows ``df`` scored by the model."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    y = exp.model_.y_[-MAX_POINTS:]
    index = exp.index_[-MAX_POINTS:]
    start = len(exp.model_.y_) - len(y)
    history = exp._score(pd.DataFrame({exp.spec.timestamp: index, exp.spec.target: y}))
    scored = exp._score(df) if df is not None and exp.spec.target in df.columns else history
    future = exp.predict()
    figures: dict[str, Any] = {}

    fig = go.Figure()
    fig.add_scatter(x=index, y=y, name="history", mode="lines", line={"color": "#444"})
    if scored is not history:
        fig.add_scatter(x=scored["timestamp"], y=scored["actual"], name="new data", mode="lines")
        fig.add_scatter(x=scored["timestamp"], y=scored["forecast"], name="one-step forecast", mode="lines")
    band_x = pd.concat([future["timestamp"], future["timestamp"][::-1]])
    band_y = pd.concat([future["upper"], future["lower"][::-1]])
    fig.add_scatter(x=band_x, y=band_y, fill="toself", name=f"{exp.spec.interval:.0%} interval", line={"width": 0})
    fig.add_scatter(x=future["timestamp"], y=future["forecast"], name="forecast", mode="lines")
    flagged = scored[scored["is_anomaly"]]
    fig.add_scatter(
        x=flagged["timestamp"], y=flagged["actual"], name="anomaly", mode="markers", marker={"color": "red", "size": 8}
    )
    fig.update_layout(title=f"{exp.spec.target}: {exp.model_description_}", xaxis_title=exp.spec.timestamp)
    figures["forecast"] = fig

    figures["decomposition"] = _decomposition(y, index, exp.seasonal_period_, start, make_subplots)

    resid = history["residual"].to_numpy()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("one-step residuals", "histogram"), column_widths=[0.7, 0.3])
    fig.add_scatter(x=index, y=resid, mode="lines", name="residual", row=1, col=1)
    fig.add_histogram(x=resid[np.isfinite(resid)], name="count", row=1, col=2)
    fig.update_layout(title=f"residuals (robust sigma {exp.sigma_:.3g})", showlegend=False)
    figures["residuals"] = fig

    if exp.cv_scores_:
        fig = go.Figure()
        names = list(exp.cv_scores_)
        fig.add_bar(x=names, y=[float(np.mean(exp.cv_scores_[n])) for n in names], name="mean MASE")
        for fold in range(len(next(iter(exp.cv_scores_.values())))):
            fig.add_scatter(
                x=names, y=[exp.cv_scores_[n][fold] for n in names], mode="markers", name=f"fold {fold + 1}"
            )
        fig.update_layout(title="cross-validated MASE per candidate (lower is better)", yaxis_title="MASE")
        figures["cv_errors"] = fig
    return figures


def _decomposition(y: np.ndarray, index: pd.DatetimeIndex, m: int, start: int, make_subplots: Any) -> Any:
    """STL (robust) when the series has a seasonal period and two full cycles; otherwise a moving-average trend."""
    if m >= 2 and len(y) >= 2 * m + 1:
        from statsmodels.tsa.seasonal import STL

        parts = STL(y, period=m, robust=True).fit()
        trend, seasonal, resid = parts.trend, parts.seasonal, parts.resid
    else:
        trend = pd.Series(y).rolling(max(3, len(y) // 20), center=True, min_periods=1).mean().to_numpy()
        seasonal, resid = np.zeros_like(y), y - trend
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, subplot_titles=("observed", "trend", "seasonal", "residual"))
    for row, values in enumerate((y, trend, seasonal, resid), start=1):
        fig.add_scatter(x=index, y=values, mode="lines", row=row, col=1)
    fig.update_layout(
        title=f"STL decomposition (period {m}, last {len(y)} of {start + len(y)} steps)", showlegend=False
    )
    return fig
