"""One self-contained HTML report of plotly figures and result tables (opens offline: plotly.js is inlined once)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["write_report"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#1f2933}
h1{margin-bottom:0}h2{border-bottom:1px solid #d9e2ec;padding-bottom:.3rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #d9e2ec;padding:.3rem .7rem;text-align:right}
th{background:#f0f4f8}td:first-child,th:first-child{text-align:left}.meta{color:#627d98}
"""


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_report(
    path: str | Path,
    title: str,
    sections: Mapping[str, Mapping[str, Any]],
    tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> Path:
    """Write ``sections`` (section title -> figure name -> plotly Figure) and ``tables`` to one HTML file."""
    import plotly.io as pio

    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>generated {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC</p>",
    ]
    for table_title, rows in (tables or {}).items():
        parts += [f"<h2>{html.escape(table_title)}</h2>", _table(rows)]
    first = True
    for section, figures in sections.items():
        parts.append(f"<h2>{html.escape(section)}</h2>")
        for name, figure in figures.items():
            parts.append(f"<h3>{html.escape(name)}</h3>")
            parts.append(pio.to_html(figure, full_html=False, include_plotlyjs="inline" if first else False))
            first = False
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(document, encoding="utf-8")
    return target
