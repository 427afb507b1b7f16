"""Domain errors: exceptions with a stable ``code``, turned into problems by ``forum.api``.

No DRF import here: services raise these without depending on the web layer.
"""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain was broken; ``code`` is stable, ``status`` the HTTP status."""

    code = "invalid_request"
    status = 400
    title = "Invalid request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.errors = errors


class NotFoundError(DomainError):
    code = "not_found"
    status = 404
    title = "Not found"


class ConflictError(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict"


__all__ = ["ConflictError", "DomainError", "NotFoundError"]
