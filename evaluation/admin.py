from django.contrib import admin

from evaluation.models import EvaluatorSettings, TraceScoring


@admin.register(EvaluatorSettings)
class EvaluatorSettingsAdmin(admin.ModelAdmin):
    list_display = ("project", "updated_at")
    search_fields = ("project__slug",)


@admin.register(TraceScoring)
class TraceScoringAdmin(admin.ModelAdmin):
    list_display = ("trace_id", "project", "status", "scored_at")
    list_filter = ("status",)
    search_fields = ("trace_id",)
