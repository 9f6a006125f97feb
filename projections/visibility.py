"""The permission rules of core/permissions.py, over the catalog: who relates to what, in SQL.

`resource_of` reads one project, task or job's relations (owner, assignee, organization,
people of what contains it and of what it contains) for `authorize`; `visible_where` is the
same VIEW rule as a WHERE clause, so lists are filtered by the database, not in Python.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from core.permissions import (
    ROLE_RANK,
    RULES,
    SEES_ALL_OF_ORGANIZATION,
    Action,
    Principal,
    Relation,
    Resource,
    policy_bypassed,
)

TABLES = {
    "project": "catalog_projects",
    "task": "catalog_tasks",
    "job": "catalog_jobs",
    "cloudstorage": "catalog_cloud_storages",
}
# For each kind, SQL (over its catalog row `r`) giving each relation's user ids. The
# relations are columns of the catalog tables (infra/schema.sql), not paths into `doc`.
_RELATIONS: dict[str, dict[Relation, str]] = {
    "project": {
        Relation.OWNER: "ARRAY[r.owner_id]",
        Relation.ASSIGNEE: "ARRAY[r.assignee_id]",
        Relation.PARENT: "ARRAY[]::int[]",
        Relation.CHILD: (
            "ARRAY(SELECT t.assignee_id FROM catalog_tasks t WHERE t.project_id = r.id"
            " UNION SELECT t.owner_id FROM catalog_tasks t WHERE t.project_id = r.id"
            " UNION SELECT j.assignee_id FROM catalog_jobs j WHERE j.project_id = r.id)"
        ),
    },
    "task": {
        Relation.OWNER: "ARRAY[r.owner_id]",
        Relation.ASSIGNEE: "ARRAY[r.assignee_id]",
        Relation.PARENT: (
            "ARRAY(SELECT unnest(ARRAY[p.owner_id, p.assignee_id]) FROM catalog_projects p"
            " WHERE p.id = r.project_id)"
        ),
        Relation.CHILD: "ARRAY(SELECT j.assignee_id FROM catalog_jobs j WHERE j.task_id = r.id)",
    },
    "job": {
        Relation.OWNER: "ARRAY[]::int[]",
        Relation.ASSIGNEE: "ARRAY[r.assignee_id]",
        Relation.PARENT: (
            "ARRAY(SELECT unnest(ARRAY[t.owner_id, t.assignee_id]) FROM catalog_tasks t"
            " WHERE t.id = r.task_id"
            " UNION SELECT unnest(ARRAY[p.owner_id, p.assignee_id]) FROM catalog_projects p"
            " WHERE p.id = r.project_id)"
        ),
        Relation.CHILD: "ARRAY[]::int[]",
    },
    "cloudstorage": {
        Relation.OWNER: "ARRAY[r.owner_id]",
        Relation.ASSIGNEE: "ARRAY[]::int[]",
        Relation.PARENT: "ARRAY[]::int[]",
        Relation.CHILD: "ARRAY[]::int[]",
        # every member of its organization (members are filtered by organization below)
        Relation.MEMBER: (
            "ARRAY(SELECT m.user_id FROM catalog_memberships m WHERE m.org_id = r.organization_id)"
        ),
    },
}


def resource_of(cur: psycopg.Cursor[Any], kind: str, ident: int) -> Resource | None:
    """The resource's relations as `authorize` needs them; None if there is no such row."""
    relations = _RELATIONS[kind]
    query = sql.SQL(
        "SELECT {owner}, {assignee}, {parent}, {child}, r.organization_id"
        " FROM {table} r WHERE r.id = %s"
    ).format(
        owner=sql.SQL(relations[Relation.OWNER]),
        assignee=sql.SQL(relations[Relation.ASSIGNEE]),
        parent=sql.SQL(relations[Relation.PARENT]),
        child=sql.SQL(relations[Relation.CHILD]),
        table=sql.Identifier(TABLES[kind]),
    )
    row = cur.execute(query, (ident,)).fetchone()
    if row is None:
        return None
    owners, assignees, parents, children, org_id = row
    return Resource(
        kind,
        owner_id=_first(owners),
        assignee_id=_first(assignees),
        org_id=org_id,
        parents=frozenset(i for i in parents if i is not None),
        children=frozenset(i for i in children if i is not None),
        ident=ident,
    )


# Ids of what the user owns or is assigned to, and of what holds a job assigned to them.
_PEOPLE = "({t}.owner_id = {{user}} OR {t}.assignee_id = {{user}})"
_PROJECTS_OF = "SELECT p.id FROM catalog_projects p WHERE " + _PEOPLE.format(t="p")
_TASKS_OF = "SELECT t.id FROM catalog_tasks t WHERE " + _PEOPLE.format(t="t")
_PROJECTS_WITH = (
    "SELECT t.project_id FROM catalog_tasks t WHERE t.project_id IS NOT NULL AND "
    + _PEOPLE.format(t="t")
    + " UNION SELECT j.project_id FROM catalog_jobs j"
    " WHERE j.project_id IS NOT NULL AND j.assignee_id = {user}"
)
_TASKS_WITH = "SELECT j.task_id FROM catalog_jobs j WHERE j.assignee_id = {user}"
# The same relations as predicates over a row `{row}` for one user `{user}`, for lists. Each
# compares an indexed column with the user or with ANY(ARRAY(uncorrelated subquery)), the
# subquery run once: PostgreSQL finds the rows through the indexes (a BitmapOr), so a list
# costs what the user relates to, not what the table holds.
_HAS_RELATION: dict[str, dict[Relation, str]] = {
    "project": {
        Relation.OWNER: "{row}.owner_id = {user}",
        Relation.ASSIGNEE: "{row}.assignee_id = {user}",
        Relation.PARENT: "FALSE",
        Relation.CHILD: "{row}.id = ANY(ARRAY(" + _PROJECTS_WITH + "))",
    },
    "task": {
        Relation.OWNER: "{row}.owner_id = {user}",
        Relation.ASSIGNEE: "{row}.assignee_id = {user}",
        Relation.PARENT: "{row}.project_id = ANY(ARRAY(" + _PROJECTS_OF + "))",
        Relation.CHILD: "{row}.id = ANY(ARRAY(" + _TASKS_WITH + "))",
    },
    "job": {
        Relation.OWNER: "FALSE",
        Relation.ASSIGNEE: "{row}.assignee_id = {user}",
        Relation.PARENT: (
            "({row}.task_id = ANY(ARRAY(" + _TASKS_OF + "))"
            " OR {row}.project_id = ANY(ARRAY(" + _PROJECTS_OF + ")))"
        ),
        Relation.CHILD: "FALSE",
    },
    "cloudstorage": {
        Relation.OWNER: "{row}.owner_id = {user}",
        Relation.ASSIGNEE: "FALSE",
        Relation.PARENT: "FALSE",
        Relation.CHILD: "FALSE",
        # every member of its organization (the organization is checked around this)
        Relation.MEMBER: "{row}.organization_id IS NOT NULL",
    },
}


def visible_where(kind: str, principal: Principal, table: str | None = None) -> sql.Composable:
    """A WHERE clause over `table` (the kind's catalog table) keeping the rows `principal`
    may view: everything for an admin; everything of an organization they maintain or own;
    otherwise rows they relate to, outside organizations or inside one they belong to."""
    if principal.is_superuser or policy_bypassed():
        return sql.SQL("TRUE")
    managed = [o for o, r in principal.roles.items() if ROLE_RANK[r] >= SEES_ALL_OF_ORGANIZATION]
    text = _visible_text(kind, table or TABLES[kind], principal.id, list(principal.roles), managed)
    return sql.SQL(text)


def _visible_text(kind: str, table: str, user: int, member: list[int], managed: list[int]) -> str:
    """The rule as SQL text. Its values are all integers, written in as such: composed of
    psycopg's Literal and Identifier objects it took longer to turn into bytes (0.6 ms on the
    busy machine) than PostgreSQL takes to run the query it filters."""
    row = '"' + table.replace('"', '""') + '"'
    org = f"{row}.organization_id"
    related = " OR ".join(
        _HAS_RELATION[kind][relation].format(row=row, user=int(user))
        for relation in sorted(RULES[(kind, Action.VIEW)])
    )
    in_reach = f"{org} IS NULL"
    if member:
        in_reach = f"({org} IS NULL OR {org} = ANY({_int_array(member)}))"
    where = f"({in_reach} AND ({related}))"
    # Terms that are always false are left out rather than left to the planner.
    if managed:
        where = f"({org} = ANY({_int_array(managed)}) OR {where})"
    return where


def _int_array(ids: list[int]) -> str:
    return "ARRAY[" + ",".join(str(int(i)) for i in ids) + "]::int[]"


def _first(ids: list[int | None]) -> int | None:
    return next((i for i in ids if i is not None), None)
