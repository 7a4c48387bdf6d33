"""Plotly figures for the prompt pages, built in Python and embedded as JSON.

The page script hands the JSON to the plotly.js we serve from our own static files
(static/vendor/plotly/plotly.min.js, see settings), so charts work with no internet.
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from prompts.selectors import Series

# Colour-blind-safe palette (Okabe-Ito), one colour per version, stable across panels.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]

PANELS = (
    ("traces", "Traces per {unit}", "traces"),
    ("p50", "Median latency", "latency (ms)"),
    ("error_pct", "Error rate", "errors (% of traces)"),
    ("thumbs_pct", "Thumbs-up rate", "thumbs up (% of votes)"),
)


def metrics_over_time_figure(series: list[Series], *, unit: str, title: str) -> dict:
    """A 2x2 grid: traffic, p50 latency, error rate and thumbs-up rate per version over
    time, one colour per version.

    Returns plain JSON data (via plotly's own encoder, which handles datetimes and numpy)
    for the template's json_script, which escapes "<" so a prompt name in the title can
    never close the script tag."""
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=[panel_title.format(unit=unit) for _, panel_title, _ in PANELS],
        shared_xaxes=True,
        vertical_spacing=0.14,
        horizontal_spacing=0.09,
    )
    # Oldest version first in the legend; colour keyed by version number so v2 has the
    # same colour on the prompt page and on every comparison.
    for s in sorted(series, key=lambda s: s.version):
        colour = PALETTE[(s.version - 1) % len(PALETTE)]
        for panel, (attr, _, _) in enumerate(PANELS):
            row, col = divmod(panel, 2)
            fig.add_trace(
                go.Scatter(
                    x=s.buckets,
                    y=getattr(s, attr),
                    name=f"v{s.version}",
                    legendgroup=f"v{s.version}",
                    showlegend=panel == 0,
                    mode="lines+markers",
                    line={"color": colour, "width": 2},
                    marker={"size": 6},
                    connectgaps=False,
                    hovertemplate=f"v{s.version}<br>%{{x|%Y-%m-%d %H:%M}}<br>%{{y:,.1f}}<extra></extra>",
                ),
                row=row + 1,
                col=col + 1,
            )
    for panel, (_, _, axis_title) in enumerate(PANELS):
        row, col = divmod(panel, 2)
        fig.update_yaxes(title_text=axis_title, rangemode="tozero", row=row + 1, col=col + 1)
        if row == 1:
            fig.update_xaxes(title_text=f"time (UTC, per {unit})", row=row + 1, col=col + 1)
    # Thumbs-up is a share of votes: a fixed 0-100 axis keeps a 92% -> 88% dip from
    # looking like a collapse. Error rates stay autoscaled so 1% vs 3% remains visible.
    fig.update_yaxes(range=[0, 102], row=2, col=2)  # 102: a 100% point is not clipped
    fig.update_layout(
        title={"text": title, "x": 0, "font": {"size": 16}},
        height=560,
        margin={"l": 70, "r": 20, "t": 80, "b": 60},
        legend={"title": {"text": "version"}, "orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"},
        template="plotly_white",
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        hovermode="closest",
    )
    return json.loads(fig.to_json())
