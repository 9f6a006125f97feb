"""Who may do what: every request and every command passes through `authorize`.

The full role matrix (organizations, memberships) arrives with the permissions issue; until
then: any signed-in user may list, view, create and annotate; only a resource's owner or an
admin may change or delete a project or task; users change only their own account; a
project's webhooks are seen and managed only by the project's owner or an admin.
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
# Kinds whose every action but listing (which shows only one's own) is the owner's; the owner
# of a webhook is the owner of its project.
PRIVATE_KINDS = frozenset({"webhook"})


def authorize(principal: Principal | None, action: Action, resource: Resource) -> Principal:
    """Returns the principal if the action is allowed; raises otherwise."""
    if principal is None:
        raise NotAuthenticated()
    if principal.is_superuser:
        return principal
    private = resource.kind in PRIVATE_KINDS and action is not Action.LIST
    if private or (action in (Action.CHANGE, Action.DELETE) and resource.kind in OWNED_KINDS):
        if resource.owner_id is None or resource.owner_id != principal.id:
            if private:
                raise PermissionDenied(
                    f"only the owner of its project or an admin may {action} this {resource.kind}"
                )
            raise PermissionDenied(
                f"only the owner of this {resource.kind} or an admin may {action} it"
            )
    return principal
