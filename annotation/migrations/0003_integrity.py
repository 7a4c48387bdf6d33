"""A queue holds a trace once (see QueueItem's Meta for why the key is the trace alone).

Existing duplicates are merged into one item per (queue, trace), as queue_create now
does: the item with the most completed reviews (then the earliest) stays and takes the
trace's first place; each reviewer keeps one review of it (a finished one over a claim
or a skip, then the newest), its done count is recounted, and the queue's positions are
renumbered 1..n in their order so "item 3 of 40" stays true. The reviewers' scores are
on the trace, not on the item, so none is lost.
"""

from django.db import migrations, models

# Every item of a (queue, trace) that has more than one, with the item it merges into.
GROUPS = """
CREATE TEMPORARY TABLE queue_item_groups ON COMMIT DROP AS
SELECT id AS item_id, keep_id, queue_id, first_position FROM (
    SELECT id, queue_id,
           first_value(id) OVER same_trace AS keep_id,
           min(position) OVER (PARTITION BY queue_id, trace_id) AS first_position,
           count(*) OVER (PARTITION BY queue_id, trace_id) AS copies
    FROM annotation_queueitem
    WINDOW same_trace AS (PARTITION BY queue_id, trace_id ORDER BY done_count DESC, position, id)
) ranked
WHERE copies > 1
"""

MERGE = [
    GROUPS,
    # One review per reviewer of the merged item: the best of theirs over all copies.
    """
    DELETE FROM annotation_queuereview r
    USING (
        SELECT r2.id, row_number() OVER (
            PARTITION BY g.keep_id, r2.reviewer_id
            ORDER BY (r2.status = 'done') DESC, r2.updated_at DESC, r2.id DESC
        ) AS rank
        FROM annotation_queuereview r2 JOIN queue_item_groups g ON g.item_id = r2.item_id
    ) ranked
    WHERE r.id = ranked.id AND ranked.rank > 1
    """,
    """
    UPDATE annotation_queuereview r SET item_id = g.keep_id
    FROM queue_item_groups g
    WHERE r.item_id = g.item_id AND g.item_id <> g.keep_id
    """,
    """
    DELETE FROM annotation_queueitem i
    USING queue_item_groups g
    WHERE i.id = g.item_id AND g.item_id <> g.keep_id
    """,
    # The copies are gone, so their places are free.
    """
    UPDATE annotation_queueitem i
    SET done_count = (SELECT count(*) FROM annotation_queuereview r WHERE r.item_id = i.id AND r.status = 'done'),
        position = g.first_position
    FROM queue_item_groups g
    WHERE i.id = g.keep_id AND g.item_id = g.keep_id
    """,
    # Renumber in two steps, because (queue, position) is unique at every row: first
    # above the queue's highest position, then down to 1..n.
    """
    UPDATE annotation_queueitem i SET position = ranked.top + ranked.n
    FROM (
        SELECT id, row_number() OVER (PARTITION BY queue_id ORDER BY position) AS n,
               max(position) OVER (PARTITION BY queue_id) AS top
        FROM annotation_queueitem
        WHERE queue_id IN (SELECT queue_id FROM queue_item_groups)
    ) ranked
    WHERE i.id = ranked.id
    """,
    """
    UPDATE annotation_queueitem i SET position = ranked.n
    FROM (
        SELECT id, row_number() OVER (PARTITION BY queue_id ORDER BY position) AS n
        FROM annotation_queueitem
        WHERE queue_id IN (SELECT queue_id FROM queue_item_groups)
    ) ranked
    WHERE i.id = ranked.id
    """,
    "DROP TABLE queue_item_groups",
    # Check the foreign keys now: Postgres refuses to ALTER a table (the constraint
    # below) while deferred checks of its rows are still pending in this transaction.
    "SET CONSTRAINTS ALL IMMEDIATE",
]


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0002_rename_tables'),
    ]

    operations = [
        migrations.RunSQL(MERGE, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='queueitem',
            constraint=models.UniqueConstraint(fields=('queue', 'trace_id'), name='queue_item_unique_trace'),
        ),
    ]
