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
_USER = "({}.doc->'{}'->>'id')::int"

# For each kind, SQL (over its catalog row `r`) giving each relation's user ids.
_RELATIONS: dict[str, dict[Relation, str]] = {
    "project": {
        Relation.OWNER: "ARRAY[(r.doc->'owner'->>'id')::int]",
        Relation.ASSIGNEE: "ARRAY[(r.doc->'assignee'->>'id')::int]",
        Relation.PARENT: "ARRAY[]::int[]",
        Relation.CHILD: (
            "ARRAY(SELECT (t.doc->'assignee'->>'id')::int FROM catalog_tasks t"
            " WHERE (t.doc->>'project_id')::int = r.id"
            " UNION SELECT (t.doc->'owner'->>'id')::int FROM catalog_tasks t"
            " WHERE (t.doc->>'project_id')::int = r.id"
            " UNION SELECT (j.doc->'assignee'->>'id')::int FROM catalog_jobs j"
            " WHERE (j.doc->>'project_id')::int = r.id)"
        ),
    },
    "task": {
        Relation.OWNER: "ARRAY[(r.doc->'owner'->>'id')::int]",
        Relation.ASSIGNEE: "ARRAY[(r.doc->'assignee'->>'id')::int]",
        Relation.PARENT: (
            "ARRAY(SELECT unnest(ARRAY[(p.doc->'owner'->>'id')::int,"
            " (p.doc->'assignee'->>'id')::int]) FROM catalog_projects p"
            " WHERE p.id = (r.doc->>'project_id')::int)"
        ),
        Relation.CHILD: (
            "ARRAY(SELECT (j.doc->'assignee'->>'id')::int FROM catalog_jobs j"
            " WHERE j.task_id = r.id)"
        ),
    },
    "job": {
        Relation.OWNER: "ARRAY[]::int[]",
        Relation.ASSIGNEE: "ARRAY[(r.doc->'assignee'->>'id')::int]",
        Relation.PARENT: (
            "ARRAY(SELECT unnest(ARRAY[(t.doc->'owner'->>'id')::int,"
            " (t.doc->'assignee'->>'id')::int]) FROM catalog_tasks t WHERE t.id = r.task_id"
            " UNION SELECT unnest(ARRAY[(p.doc->'owner'->>'id')::int,"
            " (p.doc->'assignee'->>'id')::int]) FROM catalog_projects p"
            " WHERE p.id = (r.doc->>'project_id')::int)"
        ),
        Relation.CHILD: "ARRAY[]::int[]",
    },
    "cloudstorage": {
        Relation.OWNER: "ARRAY[(r.doc->'owner'->>'id')::int]",
        Relation.ASSIGNEE: "ARRAY[]::int[]",
        Relation.PARENT: "ARRAY[]::int[]",
        Relation.CHILD: "ARRAY[]::int[]",
        # every member of its organization (members are filtered by organization below)
        Relation.MEMBER: (
            "ARRAY(SELECT m.user_id FROM catalog_memberships m"
            " WHERE m.org_id = (r.doc->>'organization')::int)"
        ),
    },
}


def resource_of(cur: psycopg.Cursor[Any], kind: str, ident: int) -> Resource | None:
    """The resource's relations as `authorize` needs them; None if there is no such row."""
    relations = _RELATIONS[kind]
    query = sql.SQL(
        "SELECT {owner}, {assignee}, {parent}, {child}, (r.doc->>'organization')::int"
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


_PEOPLE = "(({t}.doc->'owner'->>'id')::int = {user} OR ({t}.doc->'assignee'->>'id')::int = {user})"
# The same relations as predicates over a row `{row}` for one user `{user}`, for lists: each
# subquery is uncorrelated, so PostgreSQL runs it once (a hashed subplan over the indexes on
# owners and assignees) instead of once per row.
_HAS_RELATION: dict[str, dict[Relation, str]] = {
    "project": {
        Relation.OWNER: "({row}.doc->'owner'->>'id')::int = {user}",
        Relation.ASSIGNEE: "({row}.doc->'assignee'->>'id')::int = {user}",
        Relation.PARENT: "FALSE",
        Relation.CHILD: (
            "{row}.id IN (SELECT (t.doc->>'project_id')::int FROM catalog_tasks t WHERE "
            + _PEOPLE.format(t="t", user="{user}")
            + " UNION ALL SELECT (j.doc->>'project_id')::int FROM catalog_jobs j"
            " WHERE (j.doc->'assignee'->>'id')::int = {user})"
        ),
    },
    "task": {
        Relation.OWNER: "({row}.doc->'owner'->>'id')::int = {user}",
        Relation.ASSIGNEE: "({row}.doc->'assignee'->>'id')::int = {user}",
        Relation.PARENT: (
            "({row}.doc->>'project_id')::int IN (SELECT p.id FROM catalog_projects p WHERE "
            + _PEOPLE.format(t="p", user="{user}")
            + ")"
        ),
        Relation.CHILD: (
            "{row}.id IN (SELECT j.task_id FROM catalog_jobs j"
            " WHERE (j.doc->'assignee'->>'id')::int = {user})"
        ),
    },
    "job": {
        Relation.OWNER: "FALSE",
        Relation.ASSIGNEE: "({row}.doc->'assignee'->>'id')::int = {user}",
        Relation.PARENT: (
            "({row}.task_id IN (SELECT t.id FROM catalog_tasks t WHERE "
            + _PEOPLE.format(t="t", user="{user}")
            + ") OR ({row}.doc->>'project_id')::int IN (SELECT p.id FROM catalog_projects p"
            " WHERE " + _PEOPLE.format(t="p", user="{user}") + "))"
        ),
        Relation.CHILD: "FALSE",
    },
    "cloudstorage": {
        Relation.OWNER: "({row}.doc->'owner'->>'id')::int = {user}",
        Relation.ASSIGNEE: "FALSE",
        Relation.PARENT: "FALSE",
        Relation.CHILD: "FALSE",
        # every member of its organization (the organization is checked around this)
        Relation.MEMBER: "({row}.doc->>'organization') IS NOT NULL",
    },
}


def visible_where(kind: str, principal: Principal, table: str | None = None) -> sql.Composable:
    """A WHERE clause over `table` (the kind's catalog table) keeping the rows `principal`
    may view: everything for an admin; everything of an organization they maintain or own;
    otherwise rows they relate to, outside organizations or inside one they belong to."""
    if principal.is_superuser or policy_bypassed():
        return sql.SQL("TRUE")
    row = sql.Identifier(table or TABLES[kind])
    org = sql.SQL("({}.doc->>'organization')::int").format(row)
    managed = [o for o, r in principal.roles.items() if ROLE_RANK[r] >= SEES_ALL_OF_ORGANIZATION]
    related = sql.SQL(" OR ").join(
        sql.SQL(_HAS_RELATION[kind][relation]).format(row=row, user=sql.Literal(principal.id))
        for relation in sorted(RULES[(kind, Action.VIEW)])
    )
    return sql.SQL(
        "({org} = ANY({managed}::int[]) OR (({org} IS NULL OR {org} = ANY({member}::int[]))"
        " AND ({related})))"
    ).format(
        org=org,
        managed=sql.Literal(managed),
        member=sql.Literal(list(principal.roles)),
        related=related,
    )


def _first(ids: list[int | None]) -> int | None:
    return next((i for i in ids if i is not None), None)
