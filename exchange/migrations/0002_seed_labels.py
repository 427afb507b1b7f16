"""Seed the default TVEC label taxonomy. Admins edit it afterwards in the admin."""

from django.db import migrations

from exchange.default_labels import LABELS


def seed(apps, schema_editor):
    Label = apps.get_model("exchange", "Label")
    for slug, name, kind, description in LABELS:
        Label.objects.get_or_create(
            slug=slug, defaults={"name": name, "kind": kind, "description": description}
        )


def unseed(apps, schema_editor):
    apps.get_model("exchange", "Label").objects.filter(slug__in=[l[0] for l in LABELS]).delete()


class Migration(migrations.Migration):
    dependencies = [("exchange", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
