"""Who may do what: every request and every command passes through `authorize`.

The full role matrix (organizations, memberships) arrives with the permissions issue; until
then: any signed-in user may list, view, create and annotate; only a resource's owner or an
admin may change or delete a project or task, edit or remove a comment, or remove an issue;
users change only their own account.
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
    # The organization the request acts in (X-Organization), and the caller's role there.
    org_id: int | None = None
    org_role: str | None = None


# Organization roles, least to most powerful.
ROLE_RANK: dict[str, int] = {"worker": 1, "supervisor": 2, "maintainer": 3, "owner": 4}


def check_may_create_in_organization(principal: Principal, kind: str) -> None:
    """In an organization, supervisors and above create projects and tasks (manual 2.6)."""
    if principal.org_id is None or principal.is_superuser:
        return
    if ROLE_RANK.get(principal.org_role or "", 0) < ROLE_RANK["supervisor"]:
        raise PermissionDenied(
            f"a {principal.org_role} of this organization may not create a {kind}"
        )


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


OWNED_KINDS = frozenset({"project", "task", "user", "comment"})


def _owner_only(action: Action, kind: str) -> bool:
    # Anyone working on a job may resolve or reopen an issue; only its author removes it.
    if kind == "issue":
        return action == Action.DELETE
    return action in (Action.CHANGE, Action.DELETE) and kind in OWNED_KINDS


def may_attempt(principal: Principal | None, action: Action, kind: str) -> Principal:
    """The gate before the resource is known (an HTTP route): everything `authorize` decides
    without the resource's owner. The command then authorizes against the real resource."""
    if principal is None:
        raise NotAuthenticated()
    return principal


def authorize(principal: Principal | None, action: Action, resource: Resource) -> Principal:
    """Returns the principal if the action is allowed; raises otherwise."""
    if principal is None:
        raise NotAuthenticated()
    if principal.is_superuser:
        return principal
    if _owner_only(action, resource.kind):
        if resource.owner_id is None or resource.owner_id != principal.id:
            raise PermissionDenied(
                f"only the owner of this {resource.kind} or an admin may {action} it"
            )
    return principal
