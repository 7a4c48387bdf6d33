"""Sample rates are shares of traces, in [0, 1]: the judge's (a column) and
groundedness's (an option in EvaluatorSettings.config, JSON).

Rows outside are brought inside first, so the migration applies to any database: the
judge's rate is clamped (NaN becomes 0, the judge's "off"); a groundedness rate that is
not a number from 0 to 1 is removed, so the default (every trace) applies again.
"""

from django.db import migrations, models

CLAMP_JUDGE = """
UPDATE evaluation_judgesettings
SET sample_rate = CASE WHEN sample_rate = 'NaN' THEN 0 ELSE greatest(0, least(1, sample_rate)) END
WHERE NOT (sample_rate >= 0 AND sample_rate <= 1)
"""

# Absent means "the default"; present, it must be a JSON number in [0, 1] (a JSON
# number cannot be NaN). CASE, because a cast of a non-number would raise, not refuse.
GROUNDEDNESS_RATE_OK = """
CASE
    WHEN config #> '{groundedness,sample_rate}' IS NULL THEN true
    WHEN jsonb_typeof(config #> '{groundedness,sample_rate}') = 'number'
        THEN (config #>> '{groundedness,sample_rate}')::numeric BETWEEN 0 AND 1
    ELSE false
END
"""

DROP_BAD_GROUNDEDNESS_RATE = f"""
UPDATE evaluation_evaluatorsettings
SET config = config #- '{{groundedness,sample_rate}}'
WHERE NOT ({GROUNDEDNESS_RATE_OK})
"""

GROUNDEDNESS_RATE_CHECK = f"""
ALTER TABLE evaluation_evaluatorsettings
    ADD CONSTRAINT evaluator_groundedness_sample_rate_0_to_1 CHECK ({GROUNDEDNESS_RATE_OK})
"""

GROUNDEDNESS_RATE_CHECK_REVERSE = """
ALTER TABLE evaluation_evaluatorsettings DROP CONSTRAINT evaluator_groundedness_sample_rate_0_to_1
"""


class Migration(migrations.Migration):

    dependencies = [
        ('evaluation', '0002_rename_tables'),
    ]

    operations = [
        migrations.RunSQL(CLAMP_JUDGE, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='judgesettings',
            constraint=models.CheckConstraint(condition=models.Q(('sample_rate__gte', 0), ('sample_rate__lte', 1)), name='judge_sample_rate_0_to_1'),
        ),
        # A CHECK on JSON is clearer in SQL than as a Django expression; the ORM needs no
        # knowledge of it (registry.evaluator_settings_update validates first).
        migrations.RunSQL(DROP_BAD_GROUNDEDNESS_RATE, migrations.RunSQL.noop),
        migrations.RunSQL(GROUNDEDNESS_RATE_CHECK, GROUNDEDNESS_RATE_CHECK_REVERSE),
    ]
