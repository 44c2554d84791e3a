from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sysops", "0005_promises"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="stages",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="run",
            name="overlapped",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
