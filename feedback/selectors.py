"""Reads of the feedback app.

The trace page lists a trace's implicit signals with the rest of its scores, grouped by
source (explorer.selectors.trace_score_panel, one query for all of them), and renders
their evidence with templates/feedback/_signals.html; no read of its own is needed.
"""
