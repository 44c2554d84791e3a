import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sysops', '0004_run_unbounded'),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='parent',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='children', to='sysops.run'),
        ),
        migrations.AddField(
            model_name='run',
            name='imported',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='run',
            name='imported_from',
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
