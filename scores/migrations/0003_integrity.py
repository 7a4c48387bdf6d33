"""Integrity rules for scores, enforced by the database (the services check first and
answer with a friendly 400; these are the backstop for every other writer).

- End-user feedback: one row per (project, trace, span, name). Existing duplicates are
  removed first, keeping the latest (updated_at, then created_at): that is what the end
  user said last, and what the service's upsert keeps from now on.
- Score columns agree with data_type (CHECKs). Rows that cannot be read as their type
  (a NaN or infinite number, a boolean other than 0/1, a category without its label)
  are deleted first: no page or chart can show them. A text score's stray value is
  cleared; its words are in `comment`.
- A score that points at a config fits it: same project, same data type, inside its
  range, one of its categories. A CHECK cannot read another table, so this is a
  constraint trigger.
- A score config's range is not empty or inverted: inverted bounds are swapped, and an
  empty range (min = max) keeps its min only, so every score stored under it stays valid.
"""

from django.db import migrations, models

DEDUPLICATE_END_USER = """
DELETE FROM scores_score s
USING (
    SELECT id, row_number() OVER (
        PARTITION BY project_id, trace_id, span_id, name
        ORDER BY updated_at DESC, created_at DESC, id DESC
    ) AS rank
    FROM scores_score
    WHERE source = 'end_user'
) ranked
WHERE s.id = ranked.id AND ranked.rank > 1
"""

REPAIR_DATA_TYPES = [
    """
    DELETE FROM scores_score
    WHERE data_type NOT IN ('numeric', 'categorical', 'boolean', 'text')
       OR (data_type = 'boolean' AND (value IS NULL OR value NOT IN (0, 1)))
       OR (data_type = 'numeric' AND (value IS NULL OR value IN ('NaN', 'Infinity', '-Infinity')))
       OR (data_type = 'categorical' AND string_value IS NULL)
    """,
    """
    UPDATE scores_score SET value = NULL, string_value = NULL
    WHERE data_type = 'text' AND (value IS NOT NULL OR string_value IS NOT NULL)
    """,
]

REPAIR_CONFIG_RANGES = [
    """
    UPDATE scores_scoreconfig SET min_value = max_value, max_value = min_value
    WHERE min_value > max_value
    """,
    "UPDATE scores_scoreconfig SET max_value = NULL WHERE min_value = max_value",
]

# Raised as check_violation (SQLSTATE 23514), so Django reports an IntegrityError like
# for any CHECK. The config row is read without a lock: taking one would make every
# thumbs of a project queue on the user_thumbs config row, and an admin editing a
# range while scores arrive is not a race worth that.
FITS_CONFIG = r"""
CREATE FUNCTION scores_score_fits_config() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cfg record;
BEGIN
    SELECT project_id, name, data_type, min_value, max_value, categories
      INTO cfg FROM scores_scoreconfig WHERE id = NEW.config_id;
    IF NOT FOUND THEN
        RETURN NULL;  -- the foreign key reports a missing config
    END IF;
    IF cfg.project_id <> NEW.project_id THEN
        RAISE EXCEPTION 'score %: score config % belongs to another project', NEW.id, cfg.name
            USING ERRCODE = 'check_violation', CONSTRAINT = 'score_fits_config', TABLE = 'scores_score';
    END IF;
    IF NEW.data_type <> cfg.data_type THEN
        RAISE EXCEPTION 'score %: data_type % does not match score config % (%)',
                NEW.id, NEW.data_type, cfg.name, cfg.data_type
            USING ERRCODE = 'check_violation', CONSTRAINT = 'score_fits_config', TABLE = 'scores_score';
    END IF;
    IF cfg.data_type = 'numeric' AND (NEW.value < cfg.min_value OR NEW.value > cfg.max_value) THEN
        RAISE EXCEPTION 'score %: value % is outside score config % range [%, %]',
                NEW.id, NEW.value, cfg.name, cfg.min_value, cfg.max_value
            USING ERRCODE = 'check_violation', CONSTRAINT = 'score_fits_config', TABLE = 'scores_score';
    END IF;
    IF cfg.data_type = 'categorical' AND NOT (cfg.categories ? NEW.string_value) THEN
        RAISE EXCEPTION 'score %: % is not a category of score config % (%)',
                NEW.id, NEW.string_value, cfg.name, cfg.categories
            USING ERRCODE = 'check_violation', CONSTRAINT = 'score_fits_config', TABLE = 'scores_score';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER score_fits_config
    AFTER INSERT OR UPDATE OF project_id, config_id, data_type, value, string_value ON scores_score
    FOR EACH ROW
    -- Evaluator and implicit scores carry no config: their bulk writes queue no trigger event.
    WHEN (NEW.config_id IS NOT NULL)
    EXECUTE FUNCTION scores_score_fits_config();
"""

FITS_CONFIG_REVERSE = """
DROP TRIGGER score_fits_config ON scores_score;
DROP FUNCTION scores_score_fits_config();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('scores', '0002_rename_tables'),
    ]

    operations = [
        # Data first (reversing leaves the repaired rows as they are).
        migrations.RunSQL(DEDUPLICATE_END_USER, migrations.RunSQL.noop),
        migrations.RunSQL(REPAIR_DATA_TYPES, migrations.RunSQL.noop),
        migrations.RunSQL(REPAIR_CONFIG_RANGES, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='score',
            constraint=models.UniqueConstraint(condition=models.Q(('source', 'end_user')), fields=('project', 'trace_id', 'span_id', 'name'), name='score_one_end_user_per_target', nulls_distinct=False),
        ),
        migrations.AddConstraint(
            model_name='score',
            constraint=models.CheckConstraint(condition=models.Q(('data_type__in', ['numeric', 'categorical', 'boolean', 'text'])), name='score_data_type_known'),
        ),
        migrations.AddConstraint(
            model_name='score',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('data_type', 'boolean'), _negated=True), models.Q(('value__isnull', False), ('value__in', [0.0, 1.0])), _connector='OR'), name='score_boolean_is_0_or_1'),
        ),
        migrations.AddConstraint(
            model_name='score',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('data_type', 'numeric'), _negated=True), models.Q(('value__isnull', False), ('value__gt', float("-inf")), ('value__lt', float("inf"))), _connector='OR'), name='score_numeric_is_finite'),
        ),
        migrations.AddConstraint(
            model_name='score',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('data_type', 'categorical'), _negated=True), ('string_value__isnull', False), _connector='OR'), name='score_categorical_has_label'),
        ),
        migrations.AddConstraint(
            model_name='score',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('data_type', 'text'), _negated=True), models.Q(('string_value__isnull', True), ('value__isnull', True)), _connector='OR'), name='score_text_has_no_value'),
        ),
        migrations.AddConstraint(
            model_name='scoreconfig',
            constraint=models.CheckConstraint(condition=models.Q(('min_value__isnull', True), ('max_value__isnull', True), ('min_value__lt', models.F('max_value')), _connector='OR'), name='score_config_min_below_max'),
        ),
        migrations.RunSQL(FITS_CONFIG, FITS_CONFIG_REVERSE),
    ]
