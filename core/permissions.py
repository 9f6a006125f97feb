"""Who may do what. Every request passes through one of these checks.

The full role matrix (organizations, memberships) arrives with the permissions issue; until
then: any signed-in user may read and annotate any job, and only a resource's owner or an
admin may change or delete a project or task.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import PermissionDenied


@dataclass(frozen=True)
class Principal:
    id: int
    username: str
    is_superuser: bool = False


def check_owner_or_admin(principal: Principal, owner_id: int | None, what: str) -> None:
    if principal.is_superuser or (owner_id is not None and owner_id == principal.id):
        return
    raise PermissionDenied(f"only the owner of this {what} or an admin may change it")


def check_admin(principal: Principal, what: str) -> None:
    if not principal.is_superuser:
        raise PermissionDenied(f"only an admin may {what}")
