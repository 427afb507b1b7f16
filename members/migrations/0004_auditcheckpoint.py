import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0003_signingkey_id_member"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("head_id", models.BigIntegerField(unique=True)),
                ("head_hash", models.CharField(max_length=64)),
                ("entries", models.BigIntegerField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("jws", models.TextField()),
            ],
            options={
                "ordering": ["-head_id"],
            },
        ),
    ]
