"""Signals become unique on (signal_type, md5(value)) instead of (signal_type, value).

A PostgreSQL b-tree entry holds at most about 2.7 kB; a vpdq value of a few dozen frames
of unclustered hashes is longer, and its insert failed the whole batch (issue #13, item
12). The new index is added before the old one goes, so uniqueness never lapses. Lookups
by value name both the digest and the value (``exchange.db.signal_value_in``).
"""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("exchange", "0007_statement_receipt"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="signal",
            constraint=models.UniqueConstraint(
                models.F("signal_type"),
                django.db.models.functions.text.MD5("value"),
                name="unique_signal_digest",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="signal",
            name="unique_signal",
        ),
    ]
