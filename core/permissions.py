"""Who may do what: every request and every command passes through `authorize`.

The full role matrix (organizations, memberships) arrives with the permissions issue; until
then: any signed-in user may list, view, create and annotate; only a resource's owner or an
admin may change or delete a project or task; users change only their own account.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.errors import NotAuthenticated, PermissionDenied


@dataclass(frozen=True)
class Principal:
    id: int
    username: str
    is_superuser: bool = False


class Action(StrEnum):
    LIST = "list"
    VIEW = "view"
    CREATE = "create"
    CHANGE = "change"
    DELETE = "delete"
    ANNOTATE = "annotate"


@dataclass(frozen=True)
class Resource:
    kind: str  # "project", "task", "job", "label", "user", "request", "server"
    owner_id: int | None = None


OWNED_KINDS = frozenset({"project", "task", "user"})


def authorize(principal: Principal | None, action: Action, resource: Resource) -> Principal:
    """Returns the principal if the action is allowed; raises otherwise."""
    if principal is None:
        raise NotAuthenticated()
    if principal.is_superuser:
        return principal
    if action in (Action.CHANGE, Action.DELETE) and resource.kind in OWNED_KINDS:
        if resource.owner_id is None or resource.owner_id != principal.id:
            raise PermissionDenied(
                f"only the owner of this {resource.kind} or an admin may {action} it"
            )
    return principal


def authorize_webhook(
    principal: Principal | None, action: Action, project_owner_id: int | None
) -> Principal:
    """A project's webhooks are listed, seen and managed only by the owner of the project
    (`project_owner_id`, None when the project is gone) or an admin."""
    if principal is None:
        raise NotAuthenticated()
    if principal.is_superuser or action == Action.LIST:
        return principal
    if project_owner_id is None or project_owner_id != principal.id:
        raise PermissionDenied(f"only the owner of its project or an admin may {action} a webhook")
    return principal
