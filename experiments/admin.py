from django.contrib import admin

from experiments.models import Experiment


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "project", "status", "done_count", "total", "created_at")
    list_filter = ("project", "status")
