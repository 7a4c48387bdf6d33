"""The drift page's plotly figure, built in Python and embedded as JSON (static/drift/charts.js
draws it with the plotly.js we serve ourselves, so it works offline and under the CSP)."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from drift import stats
from drift.selectors import Feature

# Okabe-Ito colours, readable by colour-blind users; grey when there is no verdict.
STATUS_COLOURS = {stats.OK: "#009E73", stats.WARN: "#E69F00", stats.ALERT: "#D55E00", stats.INSUFFICIENT: "#999999"}


def psi_figure(features: list[Feature]) -> dict | None:
    """One horizontal bar per feature (its PSI), coloured by status, with the warn and alert
    thresholds drawn as lines; None when no feature has a PSI."""
    rated = [f for f in features if f.psi is not None]
    if not rated:
        return None
    rated.reverse()  # plotly draws the first bar at the bottom; keep the table's order top-down
    # PSI of a category the baseline never had is large (ln of 1/EPSILON); the axis is
    # capped so one such feature does not flatten every other bar.
    cap = max(0.5, min(max(f.psi for f in rated) * 1.05, 3.0))
    fig = go.Figure(go.Bar(
        x=[min(f.psi, cap) for f in rated],
        y=[f.label for f in rated],
        orientation="h",
        marker={"color": [STATUS_COLOURS[f.status] for f in rated]},
        customdata=[[f.psi, f.status] for f in rated],
        hovertemplate="%{y}<br>PSI %{customdata[0]:.3f} (%{customdata[1]})<extra></extra>",
    ))
    # Labels above the plot, on either side of their line, so they cover no bar and
    # "warn 0.1" and "alert 0.25" never overlap.
    for value, name, anchor in ((stats.PSI_WARN, "warn", "right"), (stats.PSI_ALERT, "alert", "left")):
        fig.add_vline(x=value, line={"color": STATUS_COLOURS[name], "dash": "dash", "width": 1})
        fig.add_annotation(x=value, y=1, yref="paper", yanchor="bottom", xanchor=anchor, showarrow=False,
                           text=f" {name} {value} ", font={"color": STATUS_COLOURS[name]})
    fig.update_layout(
        title={"text": "Population stability index per feature (current vs baseline)", "x": 0,
               "font": {"size": 16}},
        xaxis={"title": {"text": "PSI (0 = same distribution)"}, "range": [0, cap], "rangemode": "tozero"},
        yaxis={"automargin": True},
        height=max(260, 26 * len(rated) + 120),
        margin={"l": 20, "r": 20, "t": 70, "b": 50},
        template="plotly_white",
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        showlegend=False,
    )
    return json.loads(fig.to_json())
