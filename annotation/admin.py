from django.contrib import admin

from annotation.models import AnnotationQueue, Comment, QueueItem


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
