"""Plotly figures of fault detection, from plain data (arrays, frames, names): never from an experiment object.

>>> figs = build_figures(FaultFigureData(x=times, score=s, threshold=3.1, alarm=a, shares=c, features=names, ...))
>>> figs["score"].show()

- ``score``: the score against the threshold, alarms marked, the true fault windows shaded when labels are given;
  a log axis when the scores span more than two decades above the threshold, so the threshold stays readable.
- ``contributions``: each sensor's share at the latest alarm (else at the highest score).
- ``contributions_over_time``: a heatmap of the shares over the latest alarm episode (its 15 leading sensors).
- ``t2_vs_spe`` (when T² and SPE are given) and ``correlation`` (of the training features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FaultFigureData", "build_figures"]

MAX_POINTS = 5000  # line traces are thinned to at most about this many points
MAX_WINDOWS = 200  # shaded fault windows drawn
HEATMAP_FEATURES = 15
EPISODE_MARGIN = 10  # rows shown before and after the latest alarm episode


@dataclass(frozen=True)
class FaultFigureData:
    """What the figures show; arrays are in time order and of one length (``shares``: rows × features)."""

    x: np.ndarray
    x_title: str
    score: np.ndarray
    threshold: float
    alarm: np.ndarray
    shares: np.ndarray
    features: list[str]
    model_name: str
    correlation: pd.DataFrame
    truth: np.ndarray | None = None
    t2: np.ndarray | None = None
    spe: np.ndarray | None = None
    t2_limit: float | None = None
    spe_limit: float | None = None
    combined: bool = False  # the threshold is on SPE/δ² + T²/τ², a straight line in the T²–SPE plane


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def build_figures(data: FaultFigureData) -> dict[str, Any]:
    """The figures above, keyed by name."""
    figures = {
        "score": _score_figure(data),
        "contributions": _contributions_figure(data),
        "contributions_over_time": _heatmap_figure(data),
    }
    if data.t2 is not None and data.spe is not None:
        figures["t2_vs_spe"] = _t2_spe_figure(data)
    figures["correlation"] = _correlation_figure(data.correlation)
    return figures


def _score_figure(data: FaultFigureData) -> Any:
    import plotly.graph_objects as go

    score, x = data.score, data.x
    step = max(1, len(score) // MAX_POINTS)
    alarm_rows = np.flatnonzero(data.alarm)[:MAX_POINTS]
    fig = go.Figure(
        [
            go.Scattergl(x=x[::step], y=score[::step], mode="lines", name="anomaly score"),
            go.Scattergl(x=x[alarm_rows], y=score[alarm_rows], mode="markers", name="alarm", marker={"size": 5}),
        ]
    )
    if data.truth is not None:
        starts, ends = _runs(np.asarray(data.truth, dtype=bool))
        for start, end in list(zip(starts, ends, strict=True))[:MAX_WINDOWS]:
            fig.add_vrect(x0=x[start], x1=x[end - 1], fillcolor="red", opacity=0.12, line_width=0, layer="below")
        if len(starts):
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name="true fault window",
                    marker={"color": "rgba(255,0,0,0.3)", "symbol": "square", "size": 12},
                )
            )
    fig.add_hline(y=data.threshold, line_dash="dash", line_color="black", annotation_text="alarm threshold")
    positive = score[np.isfinite(score)]
    log_axis = data.threshold > 0 and len(positive) and positive.min() > 0 and positive.max() > 100 * data.threshold
    fig.update_layout(
        title=f"Anomaly score ({data.model_name}) against the alarm threshold",
        xaxis_title=data.x_title,
        yaxis_title="anomaly score (log scale)" if log_axis else "anomaly score",
        yaxis_type="log" if log_axis else "linear",
    )
    return fig


def _focus_row(data: FaultFigureData) -> tuple[int, str]:
    alarm_rows = np.flatnonzero(data.alarm)
    if len(alarm_rows):
        return int(alarm_rows[-1]), "the latest alarm"
    return int(np.argmax(data.score)), "the highest score (no alarm)"


def _contributions_figure(data: FaultFigureData) -> Any:
    import plotly.graph_objects as go

    row, what = _focus_row(data)
    rank = np.argsort(-data.shares[row], kind="stable")[:20]
    fig = go.Figure(go.Bar(x=np.array(data.features)[rank], y=data.shares[row][rank]))
    fig.update_layout(
        title=f"Which sensors drive the score at {what} ({data.x_title} {data.x[row]})",
        xaxis_title="sensor",
        yaxis_title="share of the score",
    )
    return fig


def _heatmap_figure(data: FaultFigureData) -> Any:
    import plotly.graph_objects as go

    starts, ends = _runs(np.asarray(data.alarm, dtype=bool))
    if len(starts):
        lo, hi = max(0, starts[-1] - EPISODE_MARGIN), min(len(data.score), ends[-1] + EPISODE_MARGIN)
        what = "the latest alarm episode"
    else:
        row, _ = _focus_row(data)
        lo, hi = max(0, row - EPISODE_MARGIN), min(len(data.score), row + EPISODE_MARGIN + 1)
        what = "the highest score (no alarm)"
    window = data.shares[lo:hi]
    top = np.argsort(-window.sum(axis=0), kind="stable")[:HEATMAP_FEATURES]
    fig = go.Figure(
        go.Heatmap(
            z=window[:, top].T,
            x=data.x[lo:hi],
            y=np.array(data.features)[top],
            colorscale="Reds",
            zmin=0,
            zmax=1,
            colorbar={"title": "share"},
        )
    )
    fig.update_layout(title=f"Sensor contributions over {what}", xaxis_title=data.x_title, yaxis_title="sensor")
    return fig


def _t2_spe_figure(data: FaultFigureData) -> Any:
    import plotly.graph_objects as go

    step = max(1, len(data.score) // MAX_POINTS)
    t2, spe, alarm = data.t2[::step], data.spe[::step], np.asarray(data.alarm, dtype=bool)[::step]
    fig = go.Figure(
        [
            go.Scattergl(x=t2[~alarm], y=spe[~alarm], mode="markers", name="normal", marker={"size": 4}),
            go.Scattergl(x=t2[alarm], y=spe[alarm], mode="markers", name="alarm", marker={"size": 5}),
        ]
    )
    if data.t2_limit is not None:
        fig.add_vline(x=data.t2_limit, line_dash="dash", annotation_text="T² limit")
    if data.spe_limit is not None:
        fig.add_hline(y=data.spe_limit, line_dash="dash", annotation_text="SPE limit")
    if data.combined and data.t2_limit is not None and data.spe_limit is not None:
        t2_end = data.threshold * data.t2_limit
        fig.add_trace(
            go.Scatter(x=[0.0, t2_end], y=[data.threshold * data.spe_limit, 0.0], mode="lines", name="φ threshold")
        )
    fig.update_layout(
        title="Hotelling T² against SPE (squared prediction error)",
        xaxis_title="Hotelling T²",
        yaxis_title="SPE",
    )
    return fig


def _correlation_figure(correlation: pd.DataFrame) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=correlation.to_numpy(),
            x=correlation.columns,
            y=correlation.index,
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            colorbar={"title": "correlation"},
        )
    )
    fig.update_layout(title="How the sensors move together (training data)", xaxis_title="sensor", yaxis_title="sensor")
    return fig
