"""The slices page's trend figure, built in Python and embedded as JSON (plotly.js is
served from our static files; static/slices/slices.js draws it)."""

from __future__ import annotations

import json
from collections import defaultdict

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from slices.selectors import SliceReport

# Okabe-Ito, colour-blind safe; one colour per series, the same in every panel.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
MAX_SERIES = 10
PANELS = (("hallucination_rate", "Hallucination rate per slice"), ("thumbs_up_rate", "Thumbs-up rate per slice"),
          ("praised_unsupported", "Praised but unsupported, per prompt version"))


def trends_figure(report: SliceReport) -> dict:
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[title for _, title in PANELS])
    series: dict[tuple[str, str], list] = defaultdict(list)
    order: list[str] = []
    for point in report.trends:
        if point.series not in order:
            order.append(point.series)
        series[(point.series, point.metric)].append(point)
    kept = order[:MAX_SERIES]  # slices come largest first
    for i, name in enumerate(kept):
        colour = PALETTE[i % len(PALETTE)]
        for row, (metric, _) in enumerate(PANELS[:2], start=1):
            points = series.get((name, metric), [])
            fig.add_trace(go.Scatter(
                x=[p.time for p in points], y=[None if p.value is None else 100 * p.value for p in points],
                customdata=[p.n for p in points], name=name, legendgroup=name, showlegend=row == 1,
                mode="lines+markers", line={"color": colour, "width": 2}, marker={"size": 5}, connectgaps=False,
                hovertemplate=f"{name}<br>%{{x|%Y-%m-%d %H:%M}}<br>%{{y:.1f}}% (n = %{{customdata}})<extra></extra>",
            ), row=row, col=1)
    by_prompt: dict[str, list] = defaultdict(list)
    for point in report.prompt_trends:
        by_prompt[point.series].append(point)
    for i, (name, points) in enumerate(sorted(by_prompt.items())):
        fig.add_trace(go.Scatter(
            x=[p.time for p in points], y=[100 * p.value for p in points], customdata=[p.n for p in points],
            name=name, mode="lines+markers", line={"color": PALETTE[(i + 3) % len(PALETTE)], "dash": "dot"},
            hovertemplate=f"{name}<br>%{{x|%Y-%m-%d %H:%M}}<br>%{{y:.1f}}% of thumbs-up answers flagged "
                          "(n = %{customdata})<extra></extra>",
        ), row=3, col=1)
    for row, axis in enumerate(("hallucinated (% of scored traces)", "thumbs up (% of votes)",
                                "flagged (% of thumbs-up answers)"), start=1):
        fig.update_yaxes(title_text=axis, rangemode="tozero", row=row, col=1)
    fig.update_xaxes(title_text=f"time (UTC, per {report.interval})", row=3, col=1)
    fig.update_layout(height=820, template="plotly_white", margin={"l": 70, "r": 20, "t": 60, "b": 50},
                      legend={"orientation": "v", "x": 1.01, "y": 1},
                      font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
                      hovermode="closest")
    # plotly's encoder handles datetimes; json_script in the template escapes "<".
    return json.loads(fig.to_json())
