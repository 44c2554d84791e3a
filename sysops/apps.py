from django.apps import AppConfig


class SysopsConfig(AppConfig):
    name = "sysops"
    verbose_name = "Syscall Playground"
    default_auto_field = "django.db.models.BigAutoField"
