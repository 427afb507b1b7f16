"""The database itself keeps statements and current statements consistent (PostgreSQL).

One composite foreign key per table (migration 0006) stands for the single ones: a
statement's key must be its member's, and a current statement's member and signal must
be its statement's. Whatever writes rows, these combinations cannot be stored.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from exchange.models import CurrentStatement, Signal, Statement
from tests.factories import key_of, make_party, pdq

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _submitted() -> tuple[Statement, CurrentStatement]:
    acme = make_party("acme")
    value = pdq()
    assert acme.submit(acme.statement("pdq", value))["accepted"] == 1
    statement = Statement.objects.get(signal__value=value)
    return statement, CurrentStatement.objects.get(statement=statement)


def _refused(queryset: object, **changes: object) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        queryset.update(**changes)  # type: ignore[attr-defined]


def test_a_statement_cannot_carry_another_members_key() -> None:
    """The database refuses a statement whose signing key belongs to another member, whichever
    of the two is changed."""
    statement, _ = _submitted()
    other = key_of(make_party("globex"))
    _refused(Statement.objects.filter(pk=statement.pk), signing_key_id=other.pk)
    _refused(Statement.objects.filter(pk=statement.pk), member_id=other.member_id)


def test_a_current_statement_is_its_statements_member_and_signal() -> None:
    """The database refuses a current-statement row whose member or signal is not its statement's,
    or whose statement does not exist."""
    statement, current = _submitted()
    other_member = make_party("globex").member
    other_signal = Signal.objects.create(signal_type="pdq", value=pdq())
    rows = CurrentStatement.objects.filter(pk=current.pk)
    _refused(rows, member_id=other_member.pk)
    _refused(rows, signal_id=other_signal.pk)
    _refused(rows, statement_id=statement.pk + 10_000)


def test_a_statement_that_current_rows_point_to_cannot_change_member_or_signal() -> None:
    """The database refuses moving a statement that a current-statement row points to onto another
    signal."""
    statement, _ = _submitted()
    other_signal = Signal.objects.create(signal_type="pdq", value=pdq())
    _refused(Statement.objects.filter(pk=statement.pk), signal_id=other_signal.pk)
