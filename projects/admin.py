from django.contrib import admin

from projects.models import ApiKey, Membership, Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("project", "user", "role")
    list_filter = ("role",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    # The secret hash is never shown; keys are issued through the app or create_project.
    list_display = ("public_key", "project", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("public_key", "secret_hint", "created_at", "last_used_at")
    exclude = ("secret_hash",)
