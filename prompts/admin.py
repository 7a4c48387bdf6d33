from django.contrib import admin

from prompts.models import Prompt, PromptLabel, PromptLabelEvent, PromptVersion


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "type", "latest_version", "updated_at")
    list_filter = ("type",)
    search_fields = ("name",)


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    # Versions are immutable: the admin may look, never edit.
    list_display = ("prompt", "version", "author_name", "created_at")
    search_fields = ("prompt__name", "commit_message")

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PromptLabel)
class PromptLabelAdmin(admin.ModelAdmin):
    list_display = ("prompt", "name", "version", "updated_at")
    readonly_fields = ("prompt", "name", "version", "project")


@admin.register(PromptLabelEvent)
class PromptLabelEventAdmin(admin.ModelAdmin):
    list_display = ("prompt", "label", "from_version", "to_version", "actor_name", "created_at")

    def has_change_permission(self, request, obj=None) -> bool:
        return False
