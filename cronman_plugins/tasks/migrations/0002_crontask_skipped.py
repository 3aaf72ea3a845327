from django.db import migrations, models


class Migration(migrations.Migration):
    """A task whose worker found its job's lock held ends as ``skipped``."""

    dependencies = [
        ("cron", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="crontask",
            name="status",
            field=models.CharField(
                choices=[
                    ("waiting", "Waiting"),
                    ("queued", "Queued"),
                    ("started", "Started"),
                    ("finished", "Finished"),
                    ("failed", "Failed"),
                    ("skipped", "Skipped"),
                ],
                default="waiting",
                max_length=16,
            ),
        ),
    ]
