from django.db import migrations, models


def issue_receipts(apps, schema_editor):
    # Statements accepted before receipts existed get one now, with their stored
    # receipt time (see exchange/receipts.py).
    from exchange.services.receipts import statements_issue_receipts

    statements_issue_receipts()


class Migration(migrations.Migration):
    dependencies = [
        ("exchange", "0006_composite_foreign_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="statement",
            name="receipt",
            field=models.TextField(blank=True, default=""),
            preserve_default=False,
        ),
        migrations.RunPython(issue_receipts, migrations.RunPython.noop, elidable=True),
    ]
