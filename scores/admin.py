from django.contrib import admin

from scores.models import Score, ScoreConfig


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
    raw_id_fields = ("author", "config")
