"""The monitoring figure: each feature's drift ratio (statistic over its calibrated threshold, above 1 is drift) in
the latest window of each scorer, and the recent events over time, from the plain ``monitoring_report`` dict.

>>> monitoring_figure(hub.monitoring_report("pump-7")).write_html("pump-7.html", include_plotlyjs=True)
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["monitoring_figure"]


def monitoring_figure(report: dict[str, Any]) -> Any:
    """Two panels: drift ratio per feature (latest window of each scorer, the line at 1 is the threshold), and
    the recent events (time, kind, action in the hover)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(
        rows=2,
        cols=1,
        subplot_titles=("Drift ratio per feature (latest window)", "Recent events"),
        vertical_spacing=0.18,
    )
    for window in report.get("windows", []):
        drift = window.get("drift", {})
        label = f"rows {int(window.get('end_row', 0) - window.get('rows', 0))}-{int(window.get('end_row', 0))}"
        figure.add_trace(go.Bar(x=list(drift), y=list(drift.values()), name=label), row=1, col=1)
    figure.add_hline(y=1.0, line_dash="dash", line_color="red", row=1, col=1)
    events = pd.DataFrame(report.get("events", []))
    if not events.empty:
        events["when"] = pd.to_datetime(events["time"], unit="ms", utc=True)
        for kind, group in events.groupby("kind"):
            hover = [
                f"{k}: {', '.join(f) or '-'}<br>{a}"
                for k, f, a in zip(group["kind"], group["features"], group["action"], strict=True)
            ]
            figure.add_trace(
                go.Scatter(
                    x=group["when"],
                    y=[kind] * len(group),
                    mode="markers",
                    name=str(kind),
                    marker={"size": 11},
                    hovertext=hover,
                    hoverinfo="text+x",
                ),
                row=2,
                col=1,
            )
    figure.update_yaxes(title_text="statistic / threshold", row=1, col=1)
    figure.update_layout(title=f"{report.get('experiment', '')} monitoring", barmode="group", height=700)
    return figure
