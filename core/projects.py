"""Projects: a named label set shared by the tasks inside it."""

from __future__ import annotations

import msgspec

from core.accounts import User
from core.aggregate import Entity
from core.errors import ValidationFailed
from core.labels import LabelInput, LabelSpec, build_labels
from core.permissions import (
    Action,
    Principal,
    Resource,
    authorize,
    check_may_create_in_organization,
)
from core.storage import StorageInput, StorageSpec, apply_changes, build_storage
from core.units import Unit

UNSET = msgspec.UNSET


class Project(Entity):
    KIND = "project"

    class Created(Entity.Created):
        project_id: int
        name: str
        owner_id: int | None
        assignee_id: int | None
        bug_tracker: str
        labels: list[LabelSpec]
        source_storage: StorageSpec
        target_storage: StorageSpec
        organization_id: int | None

    def __init__(
        self,
        project_id: int,
        name: str,
        owner_id: int | None,
        assignee_id: int | None,
        bug_tracker: str,
        labels: list[LabelSpec],
        source_storage: StorageSpec,
        target_storage: StorageSpec,
        organization_id: int | None,
    ) -> None:
        self.project_id = project_id
        self.name = name
        self.owner_id = owner_id
        self.assignee_id = assignee_id
        self.bug_tracker = bug_tracker
        self.labels = labels
        self.source_storage = source_storage
        self.target_storage = target_storage
        self.organization_id = organization_id
        self.task_ids: list[int] = []

    class Updated(Entity.Event):
        changes: dict[str, object]

        def apply(self, project: Project) -> None:
            apply_changes(project, self.changes)

    class LabelsChanged(Entity.Event):
        labels: list[LabelSpec]

        def apply(self, project: Project) -> None:
            project.labels = self.labels

    class TaskAdded(Entity.Event):
        task_id: int

        def apply(self, project: Project) -> None:
            project.task_ids = [*project.task_ids, self.task_id]

    class TaskRemoved(Entity.Event):
        task_id: int

        def apply(self, project: Project) -> None:
            project.task_ids = [t for t in project.task_ids if t != self.task_id]


class ProjectWrite(msgspec.Struct):
    name: str
    labels: list[LabelInput] = []
    owner_id: int | None = None
    assignee_id: int | None = None
    bug_tracker: str = ""
    source_storage: StorageInput | None = None
    target_storage: StorageInput | None = None


class ProjectPatch(msgspec.Struct):
    name: str | msgspec.UnsetType = UNSET
    labels: list[LabelInput] | msgspec.UnsetType = UNSET
    owner_id: int | None | msgspec.UnsetType = UNSET
    assignee_id: int | None | msgspec.UnsetType = UNSET
    bug_tracker: str | msgspec.UnsetType = UNSET
    source_storage: StorageInput | None | msgspec.UnsetType = UNSET
    target_storage: StorageInput | None | msgspec.UnsetType = UNSET


def check_user_exists(unit: Unit, user_id: int | None, field: str) -> None:
    if user_id is not None and unit.find(User, user_id) is None:
        raise ValidationFailed.one(field, f'Invalid pk "{user_id}" - object does not exist.')


def check_name(name: str, field: str = "name") -> str:
    if not name.strip():
        raise ValidationFailed.one(field, "This field may not be blank.")
    if len(name) > 256:
        raise ValidationFailed.one(field, "Ensure this field has no more than 256 characters.")
    return name.strip()


def project_resource(project: Project) -> Resource:
    """The project as the permission rules see it."""
    return Resource(
        "project",
        project.owner_id,
        project.assignee_id,
        project.organization_id,
        ident=project.project_id,
    )


def create_project(unit: Unit, principal: Principal, body: ProjectWrite) -> Project:
    check_may_create_in_organization(principal, "project")
    name = check_name(body.name)
    check_user_exists(unit, body.owner_id, "owner_id")
    check_user_exists(unit, body.assignee_id, "assignee_id")
    labels = build_labels(body.labels, unit.next_id)
    project_id = unit.next_id("project")
    project = Project._start(
        project_id,
        project_id=project_id,
        name=name,
        owner_id=body.owner_id if body.owner_id is not None else principal.id,
        assignee_id=body.assignee_id,
        bug_tracker=body.bug_tracker,
        labels=labels,
        source_storage=build_storage(unit, body.source_storage),
        target_storage=build_storage(unit, body.target_storage),
        organization_id=principal.org_id,
    )
    unit.add(project)
    return project


def update_project(
    unit: Unit, principal: Principal, project_id: int, body: ProjectPatch
) -> Project:
    project = unit.get(Project, project_id)
    authorize(principal, Action.CHANGE, project_resource(project))
    changes: dict[str, object] = {}
    if body.name is not UNSET:
        changes["name"] = check_name(body.name)
    for field in ("owner_id", "assignee_id"):
        value = getattr(body, field)
        if value is not UNSET:
            check_user_exists(unit, value, field)
            changes[field] = value
    if body.bug_tracker is not UNSET:
        changes["bug_tracker"] = body.bug_tracker
    for field in ("source_storage", "target_storage"):
        value = getattr(body, field)
        if value is not UNSET:
            changes[field] = msgspec.to_builtins(build_storage(unit, value))
    labels = None
    if body.labels is not UNSET:
        labels = build_labels(body.labels, unit.next_id, existing=project.labels)
    if changes:
        project.trigger_event(Project.Updated, changes=changes)
    if labels is not None:
        project.trigger_event(Project.LabelsChanged, labels=labels)
    return project
