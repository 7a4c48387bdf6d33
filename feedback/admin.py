from django.contrib import admin

from feedback.models import (
    AnnotationQueue,
    Comment,
    EvaluatorSettings,
    InteractionEvent,
    QueueItem,
    Score,
    ScoreConfig,
    TraceScoring,
)


@admin.register(ScoreConfig)
class ScoreConfigAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "data_type", "min_value", "max_value", "is_archived")
    list_filter = ("data_type", "is_archived")
    search_fields = ("name",)


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "trace_id", "span_id", "value", "string_value", "source", "author", "created_at")
    list_filter = ("source", "data_type")
    search_fields = ("trace_id", "name")
    raw_id_fields = ("author", "config", "queue")


@admin.register(InteractionEvent)
class InteractionEventAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "trace_id", "value", "created_at")
    list_filter = ("name",)
    search_fields = ("trace_id",)


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ("trace_id", "project", "author", "created_at")
    search_fields = ("trace_id", "body")


class QueueItemInline(admin.TabularInline):
    model = QueueItem
    fields = ("position", "trace_id", "pair_trace_id", "done_count")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(AnnotationQueue)
class AnnotationQueueAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "mode", "reviews_per_item", "created_at")
    inlines = [QueueItemInline]


@admin.register(EvaluatorSettings)
class EvaluatorSettingsAdmin(admin.ModelAdmin):
    list_display = ("project", "updated_at")
    search_fields = ("project__slug",)


@admin.register(TraceScoring)
class TraceScoringAdmin(admin.ModelAdmin):
    list_display = ("trace_id", "project", "status", "scored_at")
    list_filter = ("status",)
    search_fields = ("trace_id",)
