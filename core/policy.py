"""The permission policy as data: what `GET /api/auth/rules` answers, made from the tables
the checks themselves use (core/permissions.py, core/organizations.py), never written twice."""

from __future__ import annotations

from typing import Any

from core.organizations import ORGANIZATION_RULES, OWNER_GRANTS_FROM
from core.permissions import (
    CREATES_IN_ORGANIZATION,
    OWNER_ONLY,
    ROLE_RANK,
    RULES,
    SEES_ALL_OF_ORGANIZATION,
    Relation,
)

RELATION_MEANINGS: dict[Relation, str] = {
    Relation.OWNER: "the user who owns the resource",
    Relation.ASSIGNEE: "the user it is assigned to",
    Relation.PARENT: "an owner or assignee of what contains it (a job's task and project,"
    " a task's project)",
    Relation.CHILD: "someone assigned to (or owning) something inside it (a task's jobs,"
    " a project's tasks and jobs)",
    Relation.MEMBER: "any member of the organization that holds it (cloud storages)",
}


def describe_policy() -> dict[str, Any]:
    roles_by_rank = sorted(ROLE_RANK, key=ROLE_RANK.__getitem__)
    return {
        "admin": "may do anything",
        "relations": {str(r): meaning for r, meaning in RELATION_MEANINGS.items()},
        "resources": _resource_rules(),
        "owner_only": {
            kind: sorted(str(action) for action in actions) for kind, actions in OWNER_ONLY.items()
        },
        "not_visible": "404: a resource one may not view is answered as not found",
        "not_allowed": "403: an action one may not take on a visible resource",
        "organization": {
            "roles": [{"name": role, "rank": ROLE_RANK[role]} for role in roles_by_rank],
            "sees_and_manages_everything_from": _role_at(SEES_ALL_OF_ORGANIZATION),
            "creates_projects_and_tasks_from": _role_at(CREATES_IN_ORGANIZATION),
            "actions": dict(ORGANIZATION_RULES),
            "only_the_owner_grants_from": OWNER_GRANTS_FROM,
            "others": "act by their relations, and only on resources of organizations they"
            " belong to",
        },
    }


def _resource_rules() -> dict[str, dict[str, list[str]]]:
    described: dict[str, dict[str, list[str]]] = {}
    for (kind, action), relations in RULES.items():
        described.setdefault(kind, {})[str(action)] = sorted(str(r) for r in relations)
    return described


def _role_at(rank: int) -> str:
    return next(role for role, r in ROLE_RANK.items() if r == rank)
