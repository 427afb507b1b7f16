"""API key secrets are never stored: the database holds a public prefix and a digest."""

import hashlib

import pytest
from django.db import connection

from members.models import ApiKey
from members.services import api_key_issue, api_key_lookup
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def _text_columns() -> list[str]:
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, "members_apikey")
    return [column.name for column in description]


def test_no_secret_in_any_column() -> None:
    """No column of members_apikey, read with raw SQL, contains the secret or its random
    part; only the prefix and the SHA-256 digest of the whole secret are stored."""
    member = MemberFactory()
    key, secret = api_key_issue(member=member, actor="test")
    random_part = secret.split("_", 2)[2]  # cdl_<hex prefix>_<random part>
    columns = _text_columns()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(connection.ops.quote_name(c) for c in columns)} "
            "FROM members_apikey WHERE id = %s",
            [key.pk],
        )
        row = dict(zip(columns, cursor.fetchone(), strict=True))
    for column, value in row.items():
        text = "" if value is None else str(value)
        assert secret not in text, column
        assert random_part not in text, column
    assert row["prefix"] == key.prefix and secret.startswith(f"cdl_{key.prefix}_")
    assert row["digest"] == hashlib.sha256(secret.encode()).hexdigest()


def test_lookup_needs_the_whole_secret() -> None:
    """The prefix alone, or the secret with one character changed, finds no key."""
    member = MemberFactory()
    key, secret = api_key_issue(member=member, actor="test")
    assert api_key_lookup(secret) == key
    assert api_key_lookup(f"cdl_{key.prefix}_") is None
    assert api_key_lookup(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert ApiKey.objects.filter(digest=secret).count() == 0
