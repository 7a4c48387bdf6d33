from django.contrib import admin

from feedback.models import InteractionEvent


@admin.register(InteractionEvent)
class InteractionEventAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "trace_id", "value", "created_at")
    list_filter = ("name",)
    search_fields = ("trace_id",)


