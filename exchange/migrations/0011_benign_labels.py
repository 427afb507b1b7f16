"""The known-benign list (issue #18, part 3): a ``benign`` label kind with its default
labels, and ``Statement.benign``, fixed at ingest from the statement's labels.

The column has a database default, so adding it to a large statement table rewrites
nothing (PostgreSQL 11+ stores the default in the catalogue); every existing statement
predates benign labels and is ``false``.
"""

from django.db import migrations, models

from exchange.default_labels import BENIGN_LABELS


def seed(apps, schema_editor):
    Label = apps.get_model("exchange", "Label")
    for slug, name, kind, description in BENIGN_LABELS:
        Label.objects.get_or_create(
            slug=slug, defaults={"name": name, "kind": kind, "description": description}
        )


def unseed(apps, schema_editor):
    slugs = [label[0] for label in BENIGN_LABELS]
    apps.get_model("exchange", "Label").objects.filter(slug__in=slugs).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("exchange", "0010_disputes"),
    ]

    operations = [
        migrations.AddField(
            model_name="statement",
            name="benign",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AlterField(
            model_name="label",
            name="kind",
            field=models.CharField(
                choices=[
                    ("behaviour", "Behaviour"),
                    ("entity", "Entity"),
                    ("content", "Content"),
                    ("incident", "Incident"),
                    ("benign", "Benign"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(seed, unseed),
    ]
