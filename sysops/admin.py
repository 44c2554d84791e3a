from django.contrib import admin

from sysops.models import Host, Run


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "experiment", "status", "created_at", "finished_at", "unsandboxed")
    list_filter = ("status", "experiment")


admin.site.register(Host)
