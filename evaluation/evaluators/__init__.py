"""Offline evaluators that score traces in the background (queue `scoring`).

Each evaluator is a pure function of a trace's texts (no database access), so it can
be benchmarked and unit-tested alone; `runner` loads spans, calls the enabled ones and
writes their results as `source=evaluator` Scores.
"""
