"""retention/tables.py decides, for every model that belongs to a project, whether
retention deletes its rows (and how) or keeps them: a new table cannot be forgotten."""

from __future__ import annotations

from django.apps import apps

from retention.tables import BY_TRACE_ID, OWN_CLOCK, decided_models


def _project_models():
    for model in apps.get_models():
        fields = {f.name for f in model._meta.get_fields()}
        if "project" in fields or "project_id" in fields:
            yield model


def test_every_project_table_has_a_retention_decision():
    missing = sorted(m._meta.label for m in _project_models() if m not in decided_models())
    assert missing == [], f"add these to retention/tables.py (delete with the trace, own clock, or keep): {missing}"


def test_rows_deleted_by_trace_id_have_the_columns_the_delete_uses():
    for model in BY_TRACE_ID:
        columns = {f.column for f in model._meta.concrete_fields}
        assert {"project_id", "trace_id"} <= columns, model
    for rule in OWN_CLOCK:
        assert rule.column in {f.column for f in rule.model._meta.concrete_fields}, rule
