"""What every app's admin shares: service errors shown on forms.

Admin forms check input shape only; the rules are the services'. A form that needs a
rule before saving calls the service's own check and shows the ``DomainError`` it
raises as a form error, so a refusal is a message on the form, never a 500.

No app is imported here: the apps' admins import this module, not the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django import forms

from forum.errors import DomainError


@contextmanager
def domain_errors_on(form: forms.BaseForm, field: str | None = None) -> Iterator[None]:
    """Show a ``DomainError`` raised inside the block as an error of ``form`` on
    ``field`` (``None``: of the whole form)."""
    try:
        yield
    except DomainError as exc:
        form.add_error(field, exc.detail)
