"""A label can only point at a version of its own prompt.

PromptLabel has both `prompt` and `version`; nothing tied them together, so a label of
prompt A could serve prompt B's template. A composite foreign key (version_id,
prompt_id) -> PromptVersion (id, prompt_id) makes the database refuse that; the unique
(id, prompt) on PromptVersion is its target. Django's foreign keys stay as they are
(the ORM keeps using them); this one exists only in the database.

A label that already points at another prompt's version is deleted first: what it
serves is wrong, and its moves stay in the label history (PromptLabelEvent).
"""

from django.db import migrations, models

DROP_FOREIGN_LABELS = """
DELETE FROM prompts_promptlabel l
USING prompts_promptversion v
WHERE v.id = l.version_id AND v.prompt_id <> l.prompt_id
"""

# Not deferrable: the statement that points a label elsewhere fails, not the commit.
# No delete order changes: a version with labels could never be deleted before them
# (PromptLabel.version is PROTECT).
LABEL_VERSION_FK = """
ALTER TABLE prompts_promptlabel
    ADD CONSTRAINT prompt_label_version_of_its_prompt
    FOREIGN KEY (version_id, prompt_id) REFERENCES prompts_promptversion (id, prompt_id)
"""

LABEL_VERSION_FK_REVERSE = "ALTER TABLE prompts_promptlabel DROP CONSTRAINT prompt_label_version_of_its_prompt"


class Migration(migrations.Migration):

    dependencies = [
        ('prompts', '0001_initial'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='promptversion',
            constraint=models.UniqueConstraint(fields=('id', 'prompt'), name='prompt_version_id_prompt'),
        ),
        migrations.RunSQL(DROP_FOREIGN_LABELS, migrations.RunSQL.noop),
        migrations.RunSQL(LABEL_VERSION_FK, LABEL_VERSION_FK_REVERSE),
    ]
