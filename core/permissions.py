"""Who may do what: every request and every command passes through `authorize`.

The rules are CVAT's (its IAM rule tables, manual 2.2 and 2.6), written as one table below:

* An admin may do anything.
* Inside an organization, its owner and maintainers may do anything to what it holds;
  supervisors and workers are treated as below, by their relation to the resource.
* Otherwise a user acts on a project, task or job by their relation to it: its `owner`, its
  `assignee`, someone owning or assigned to what contains it (`parent`: the task or project of
  a job, the project of a task), or someone assigned to something inside it (`child`: a job of
  a task, a task or job of a project). `RULES` lists which relations allow which action.
* A resource one may not view answers "not found" (no probing of ids); an action on a visible
  resource one may not take answers "forbidden".
* Creating in an organization takes the supervisor role or above.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import NotAuthenticated, NotFound, PermissionDenied


@dataclass(frozen=True)
class Principal:
    id: int
    username: str
    is_superuser: bool = False
    # The organization the request acts in (X-Organization), and the caller's role there.
    org_id: int | None = None
    org_role: str | None = None
    # The caller's role in every organization they belong to.
    roles: dict[int, str] = field(default_factory=dict, compare=False, hash=False)


class Action(StrEnum):
    LIST = "list"
    VIEW = "view"
    CREATE = "create"
    CHANGE = "change"
    DELETE = "delete"
    ANNOTATE = "annotate"


class Relation(StrEnum):
    OWNER = "owner"
    ASSIGNEE = "assignee"
    PARENT = "parent"
    CHILD = "child"
    MEMBER = "member"  # any member of the organization that holds it


# Organization roles, least to most powerful.
ROLE_RANK: dict[str, int] = {"worker": 1, "supervisor": 2, "maintainer": 3, "owner": 4}
SEES_ALL_OF_ORGANIZATION = ROLE_RANK["maintainer"]
CREATES_IN_ORGANIZATION = ROLE_RANK["supervisor"]  # projects and tasks

OWN, ASG, PAR, CHI = Relation.OWNER, Relation.ASSIGNEE, Relation.PARENT, Relation.CHILD
MEM = Relation.MEMBER
RULES: dict[tuple[str, Action], frozenset[Relation]] = {
    ("project", Action.VIEW): frozenset({OWN, ASG, CHI}),
    ("project", Action.CHANGE): frozenset({OWN, ASG}),
    ("project", Action.DELETE): frozenset({OWN}),
    ("project", Action.ANNOTATE): frozenset({OWN, ASG}),  # importing a dataset
    ("task", Action.VIEW): frozenset({OWN, ASG, PAR, CHI}),
    ("task", Action.CHANGE): frozenset({OWN, ASG, PAR}),
    ("task", Action.DELETE): frozenset({OWN, PAR}),
    ("task", Action.ANNOTATE): frozenset({OWN, ASG, PAR}),
    ("job", Action.VIEW): frozenset({ASG, PAR}),
    ("job", Action.ANNOTATE): frozenset({ASG, PAR}),
    ("job", Action.CHANGE): frozenset({PAR}),  # stage and assignee; its assignee sets its state
    ("job", Action.DELETE): frozenset({PAR}),
    # Cloud storages: their owner (and the organization's maintainers) manage them; every
    # member of their organization uses them (lists their content, takes or puts data).
    ("cloudstorage", Action.VIEW): frozenset({OWN, MEM}),
    ("cloudstorage", Action.CHANGE): frozenset({OWN}),
    ("cloudstorage", Action.DELETE): frozenset({OWN}),
}
# Kinds only their managers see or touch at all: the owner (of a webhook, its project's owner)
# and, inside an organization, its maintainers and owner (besides admins).
MANAGED_KINDS = frozenset({"webhook"})
# Actions on kinds with a single owner (an author) that only they (or an admin) take. Anyone
# working on a job may resolve or reopen an issue; only its author removes it.
OWNER_ONLY: dict[str, frozenset[Action]] = {
    "user": frozenset({Action.CHANGE, Action.DELETE}),
    "comment": frozenset({Action.CHANGE, Action.DELETE}),
    "issue": frozenset({Action.DELETE}),
}


_bypassed = False  # test-only: see bypass_policy_for_measurement


def bypass_policy_for_measurement() -> None:
    """TEST-ONLY (PALIMPSEST_TEST_BYPASS_POLICY=1, read once at server start): from now on
    this process allows every action and shows everything, to measure what the policy costs
    (bench/permissions.py). Never set in production: it disables every permission check."""
    global _bypassed
    _bypassed = True


def policy_bypassed() -> bool:
    return _bypassed


@dataclass(frozen=True)
class Resource:
    kind: str  # "project", "task", "job", "issue", "comment", "user", ...
    owner_id: int | None = None
    assignee_id: int | None = None
    org_id: int | None = None
    parents: frozenset[int] = frozenset()  # owners and assignees of what contains it
    children: frozenset[int] = frozenset()  # assignees (and owners) of what it contains
    ident: object = ""  # its id, for messages

    def relations_of(self, user_id: int, member_of: Iterable[int] = ()) -> set[Relation]:
        found = set()
        if self.org_id is not None and self.org_id in member_of:
            found.add(Relation.MEMBER)
        if user_id == self.owner_id:
            found.add(Relation.OWNER)
        if user_id == self.assignee_id:
            found.add(Relation.ASSIGNEE)
        if user_id in self.parents:
            found.add(Relation.PARENT)
        if user_id in self.children:
            found.add(Relation.CHILD)
        return found


def may_attempt(principal: Principal | None, action: Action, kind: str) -> Principal:
    """The gate before the resource is known (an HTTP route): everything `authorize` decides
    without the resource itself. The command then authorizes against the real resource."""
    if principal is None:
        raise NotAuthenticated()
    return principal


def authorize(principal: Principal | None, action: Action, resource: Resource) -> Principal:
    """Returns the principal if the action is allowed; raises NotFound when the resource is
    not even visible to them, PermissionDenied when the action is not theirs to take."""
    if principal is None:
        raise NotAuthenticated()
    if principal.is_superuser or _bypassed or _manages(principal, resource.org_id):
        return principal
    if resource.org_id is not None and resource.org_id not in principal.roles:
        raise NotFound(resource.kind, resource.ident)
    kind = resource.kind
    if (kind, Action.VIEW) in RULES:
        relations = resource.relations_of(principal.id, principal.roles)
        if not relations & RULES[(kind, Action.VIEW)]:
            raise NotFound(kind, resource.ident)
        if action in (Action.VIEW, Action.LIST) or relations & RULES.get((kind, action), set()):
            return principal
        raise PermissionDenied(f"you may not {action} this {kind}")
    if kind in MANAGED_KINDS and resource.owner_id != principal.id:
        raise PermissionDenied(
            f"only the owner of its project, the organization's owner and maintainers or an"
            f" admin may {action} a {kind}"
        )
    if action in OWNER_ONLY.get(kind, ()) and resource.owner_id != principal.id:
        raise PermissionDenied(f"only the author of this {kind} or an admin may {action} it")
    return principal


def sees_all_of(principal: Principal, org_id: int | None) -> bool:
    """Whether the principal sees everything the organization holds (or everything at all)."""
    return principal.is_superuser or _manages(principal, org_id)


def check_may_create_in_organization(principal: Principal, kind: str) -> None:
    """In an organization, supervisors and above create projects and tasks (manual 2.6)."""
    if principal.org_id is None or principal.is_superuser or _bypassed:
        return
    if ROLE_RANK.get(principal.org_role or "", 0) < CREATES_IN_ORGANIZATION:
        raise PermissionDenied(
            f"a {principal.org_role} of this organization may not create a {kind}"
        )


def _manages(principal: Principal, org_id: int | None) -> bool:
    if org_id is None:
        return False
    return ROLE_RANK.get(principal.roles.get(org_id, ""), 0) >= SEES_ALL_OF_ORGANIZATION


def managed_organizations(principal: Principal) -> list[int]:
    """The organizations in which the principal may do anything (maintainer or owner)."""
    return [
        org_id
        for org_id, role in principal.roles.items()
        if ROLE_RANK.get(role, 0) >= SEES_ALL_OF_ORGANIZATION
    ]
