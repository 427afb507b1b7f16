"""Feed rows get ``added_at``, strictly increasing with ``seq``: TAXII's ``date_added``.

Rows written before this migration get ``created_at`` nudged forward where needed, so
that the order holds for them too: with ``g(seq) = created_at - seq µs`` and ``M`` its
running maximum, ``added_at = M(seq) + seq µs`` is at least ``created_at`` and grows by
at least a microsecond from one row to the next.
"""

from datetime import timedelta

from django.db import migrations, models


def backfill(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE exchange_feedentry f SET added_at = b.added_at FROM ("
            "SELECT seq, MAX(created_at - seq * interval '1 microsecond') "
            "OVER (ORDER BY seq) + seq * interval '1 microsecond' AS added_at "
            "FROM exchange_feedentry) b WHERE b.seq = f.seq"
        )
        return
    FeedEntry = apps.get_model("exchange", "FeedEntry")
    last = None
    for entry in FeedEntry.objects.order_by("seq").iterator():
        at = entry.created_at
        if last is not None and at <= last:
            at = last + timedelta(microseconds=1)
        FeedEntry.objects.filter(seq=entry.seq).update(added_at=at)
        last = at


class Migration(migrations.Migration):
    dependencies = [
        ("exchange", "0008_signal_value_digest"),
    ]

    operations = [
        migrations.AddField(
            model_name="feedentry",
            name="added_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
