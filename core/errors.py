"""The errors the domain raises; the web layer maps each to an HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused. Raised before any event is triggered, so nothing changed."""


class ValidationFailed(DomainError):
    """Bad input: `errors` maps a field path (``labels[2].attributes[0].values``) to reasons."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors

    @classmethod
    def one(cls, path: str, reason: str) -> ValidationFailed:
        return cls({path: [reason]})


class NotFound(DomainError):
    def __init__(self, kind: str, ident: object) -> None:
        super().__init__(f"{kind} {ident} was not found")
        self.kind = kind
        self.ident = ident


class NotAuthenticated(DomainError):
    """No (valid) credentials came with the request."""

    def __init__(self, detail: str = "Authentication credentials were not provided.") -> None:
        super().__init__(detail)
        self.detail = detail


class PermissionDenied(DomainError):
    """The acting user's role does not allow this."""


class Conflict(DomainError):
    """The command clashes with the current state (a concurrent edit, a duplicate name)."""


class ErrorCollector:
    """Gathers field errors under path prefixes, then raises them all at once."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, reason: str) -> None:
        self.errors.setdefault(path, []).append(reason)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)
