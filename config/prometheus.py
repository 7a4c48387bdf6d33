"""GET /metrics: what an operator watches, in Prometheus' text format.

Read at scrape time from the database and the broker, so every web process answers the
same (per-process counters would need prometheus-client's multiprocess mode under
gunicorn, and would reset with each worker). Instance-wide, so it is not a project page:
it needs `Authorization: Bearer <SPYGLASS_METRICS_TOKEN>` or a superuser's session, and
says so when neither is given.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

RECENT = timedelta(minutes=5)


class SpyglassCollector:
    def collect(self):
        from evaluation.fair_queue import backlog
        from evaluation.sweep import queue_backlog
        from projects.models import Project
        from tracing.models import Trace

        now = datetime.now(UTC)
        slugs = dict(Project.objects.values_list("pk", "slug"))

        waiting = GaugeMetricFamily("spyglass_scoring_backlog_traces",
                                    "Traces waiting in the fair queue for their cheap scores", labels=["project"])
        oldest = GaugeMetricFamily("spyglass_scoring_backlog_oldest_seconds",
                                   "Age of the oldest trace waiting for cheap scores", labels=["project"])
        for item in backlog():
            slug = slugs.get(item.project_id, str(item.project_id))
            waiting.add_metric([slug], item.waiting)
            oldest.add_metric([slug], (now - item.oldest).total_seconds())
        yield waiting
        yield oldest

        changed = GaugeMetricFamily("spyglass_traces_changed_recent",
                                    f"Traces stored or changed in the last {RECENT.seconds // 60} minutes "
                                    "(an ingest rate: divide by the window)", labels=["project"])
        rows = (Trace.objects.filter(updated_at__gte=now - RECENT).values("project_id")
                .annotate(n=Count("id")).order_by())
        for row in rows:
            changed.add_metric([slugs.get(row["project_id"], str(row["project_id"]))], row["n"])
        yield changed

        yield from _ingest_and_policy(slugs)

        queued = GaugeMetricFamily("spyglass_broker_queue_messages",
                                   "Messages waiting on each Celery queue (absent when the broker can't tell)",
                                   labels=["queue"])
        for queue in settings.CELERY_WORKER_QUEUES:
            depth = queue_backlog(queue)
            if depth is not None:
                queued.add_metric([queue], depth)
        yield queued


def _ingest_and_policy(slugs: dict[int, str]):
    """Ingest counters (tracing.IngestCounter) and the backlog policy's skips and state."""
    from evaluation.backlog import policy_for
    from evaluation.fair_queue import backlog
    from evaluation.models import ScoringTurn
    from tracing.models import IngestCounter

    spans = CounterMetricFamily("spyglass_ingest_spans", "Spans stored (re-sent duplicates not counted)",
                                labels=["project"])
    updates = CounterMetricFamily("spyglass_ingest_trace_updates",
                                  "Traces stored or changed, one per trace per ingest batch", labels=["project"])
    for project_id, n_spans, n_updates in IngestCounter.objects.values_list("project_id", "spans", "trace_updates"):
        slug = slugs.get(project_id, str(project_id))
        spans.add_metric([slug], n_spans)
        updates.add_metric([slug], n_updates)
    yield spans
    yield updates

    skipped = CounterMetricFamily("spyglass_scoring_skipped_traces",
                                  "Traces the project's backlog policy left without cheap scores", labels=["project"])
    for project_id, n in ScoringTurn.objects.filter(skipped_total__gt=0).values_list("project_id", "skipped_total"):
        skipped.add_metric([slugs.get(project_id, str(project_id))], n)
    yield skipped

    acting = GaugeMetricFamily("spyglass_scoring_backlog_policy_acting",
                               "1 while the project's backlog is above its policy's threshold and the policy "
                               "(label mode) decides what is scored; 0 otherwise (projects with a backlog only)",
                               labels=["project", "mode"])
    for item in backlog():
        policy = policy_for(item.project_id)
        acting.add_metric([slugs.get(item.project_id, str(item.project_id)), policy.mode],
                          1 if policy.applies(item.waiting) else 0)
    yield acting


def _allowed(request: HttpRequest) -> bool:
    token = settings.SPYGLASS_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    return bool(getattr(request, "user", None) and request.user.is_authenticated and request.user.is_superuser)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        hint = ("send Authorization: Bearer <SPYGLASS_METRICS_TOKEN>" if settings.SPYGLASS_METRICS_TOKEN
                else "set SPYGLASS_METRICS_TOKEN on the server and send it as a Bearer token")
        return HttpResponse(f"/metrics is for operators: {hint} (or log in as a superuser).\n",
                            status=403, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpyglassCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
