"""Workspaces and who holds which role in each (membership inline).

Tenant-level configuration: managed by people holding the workspace and membership
permissions tenant-wide (superusers, in practice). Every change is an audit event
(runs.evidence.config), as from `manage.py workspace_add` / `workspace_grant`.
"""

from django.contrib import admin

from ..models import Membership, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["=slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        # a workspace's slug is its address (robots' RC_WORKSPACE_ID, definitions)
        return ["slug"] if obj is not None else []
