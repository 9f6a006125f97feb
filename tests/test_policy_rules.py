"""GET /api/auth/rules describes the policy, and what it says is what `authorize` does."""

from __future__ import annotations

import httpx
import pytest

from core.errors import NotFound, PermissionDenied
from core.permissions import Action, Principal, Relation, Resource, authorize
from tests.live_server import LiveServer

ME = 7
ORG = 3  # the organization a "member" relation is had through (as a worker there)


def resource_with(kind: str, relation: Relation) -> Resource:
    return Resource(
        kind,
        owner_id=ME if relation == Relation.OWNER else None,
        assignee_id=ME if relation == Relation.ASSIGNEE else None,
        parents=frozenset({ME}) if relation == Relation.PARENT else frozenset(),
        children=frozenset({ME}) if relation == Relation.CHILD else frozenset(),
        org_id=ORG if relation == Relation.MEMBER else None,
    )


def decided(kind: str, action: str, relation: Relation) -> str:
    try:
        roles = {ORG: "worker"} if relation == Relation.MEMBER else {}
        authorize(Principal(ME, "me", roles=roles), Action(action), resource_with(kind, relation))
    except NotFound:
        return "not visible"
    except PermissionDenied:
        return "denied"
    return "allowed"


@pytest.fixture(scope="module")
def rules(server: LiveServer) -> dict:
    answer = httpx.get(f"{server.url}/api/auth/rules")
    assert answer.status_code == 200
    return answer.json()


def test_the_described_relations_are_the_ones_authorize_lets_through(rules: dict) -> None:
    assert set(rules["resources"]) == {"project", "task", "job", "cloudstorage"}
    for kind, actions in rules["resources"].items():
        viewers = set(actions["view"])
        for action, relations in actions.items():
            for relation in Relation:
                expected = (
                    "allowed"
                    if relation in relations
                    else "denied"
                    if relation in viewers
                    else "not visible"
                )
                assert decided(kind, action, relation) == expected, (kind, action, relation)
    assert rules["resources"]["job"]["change"] == ["parent"]
    assert set(rules["relations"]) == {str(r) for r in Relation}


def test_roles_and_organization_rules(rules: dict) -> None:
    organization = rules["organization"]
    assert [r["name"] for r in organization["roles"]] == [
        "worker",
        "supervisor",
        "maintainer",
        "owner",
    ]
    assert organization["sees_and_manages_everything_from"] == "maintainer"
    assert organization["creates_projects_and_tasks_from"] == "supervisor"
    assert organization["actions"]["delete this organization"] == "owner"
    assert organization["actions"]["invite members"] == "maintainer"
    assert rules["owner_only"]["issue"] == ["delete"]
    assert rules["owner_only"]["comment"] == ["change", "delete"]


def test_an_organization_maintainer_cannot_delete_it_as_described(
    server: LiveServer, admin: httpx.Client, rules: dict
) -> None:
    from tests.conftest import register

    assert rules["organization"]["actions"]["delete this organization"] == "owner"
    org = admin.post("/api/organizations", json={"slug": "rules", "name": "Rules"}).json()
    with register(server, "mona") as mona:
        invited = admin.post(
            "/api/invitations",
            params={"org": "rules"},
            json={"role": "maintainer", "email": "mona@example.com"},
        )
        assert invited.status_code == 201, invited.text
        accepted = mona.post(f"/api/invitations/{invited.json()['key']}/accept")
        assert accepted.status_code == 200, accepted.text
        refused = mona.delete(f"/api/organizations/{org['id']}")
        assert refused.status_code == 403
        assert "owner" in refused.json()["detail"]
