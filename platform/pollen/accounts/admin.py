from django.contrib import admin

from pollen.accounts.models import ApiToken, Membership, Site


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at", "agent_last_seen_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "site", "kind", "role", "prefix", "last_used_at", "revoked_at"]
    list_filter = ["kind", "role", "site"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at"]
    search_fields = ["name", "prefix"]
