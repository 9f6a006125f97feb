"""Webhooks (CVAT's): a subscription of a project or an organization to some of its events,
posted to a URL.

A webhook is an aggregate; making, changing and deleting it are events with their actor. Its
signing secret is not: it stays out of the log (see web/webhooks.py), as token values do.
A project webhook is managed by the project's owner, an organization webhook (made inside the
organization: `X-Organization` or `?org=`) by the organization's owner and maintainers, who
also manage the webhooks of its projects (the policy is core/permissions.py's).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

import msgspec

from core.aggregate import Entity
from core.errors import ErrorCollector
from core.permissions import Action, Principal, Resource, authorize
from core.projects import Project
from core.units import Unit

UNSET = msgspec.UNSET
WebhookType = Literal["project", "organization"]
ContentType = Literal["application/json"]

# The CVAT event keys this server sends, by resource (CVAT's webhooks/event_type.py).
RESOURCE_ACTIONS: dict[str, tuple[str, ...]] = {
    "project": ("create", "update", "delete"),
    "task": ("create", "update", "delete"),
    "job": ("create", "update", "delete"),
    "issue": ("create", "update", "delete"),
    "comment": ("create", "update", "delete"),
    "invitation": ("create", "delete"),
    "membership": ("create", "update", "delete"),
    "organization": ("update",),
}
ORGANIZATION_EVENTS = tuple(
    sorted(f"{action}:{resource}" for resource, a in RESOURCE_ACTIONS.items() for action in a)
)
# A project's webhook: what happens inside it, and to it (a project is not made inside one).
PROJECT_EVENTS = tuple(
    key
    for key in ORGANIZATION_EVENTS
    if key.split(":")[1] in ("task", "job", "issue", "comment")
    or key in ("update:project", "delete:project")
)
EVENTS_OF_TYPE: dict[str, tuple[str, ...]] = {
    "project": PROJECT_EVENTS,
    "organization": ORGANIZATION_EVENTS,
}
TARGET_URL_MAX = 8192
DESCRIPTION_MAX = 128
SECRET_MAX = 64
NO_ORGANIZATION = (
    "An organization webhook is made inside its organization: send X-Organization or ?org=."
)


def event_group(key: str) -> str:
    """The display group of an event key: "Task" for "update:task"."""
    return key.split(":", 1)[1].title()


class WebhookWrite(msgspec.Struct):
    """CVAT's WebhookWriteRequest (POST and PUT)."""

    target_url: str
    type: WebhookType
    events: list[str]
    description: str = ""
    content_type: ContentType = "application/json"
    secret: str = ""
    is_active: bool = True
    enable_ssl: bool = True
    project_id: int | None = None


class WebhookPatch(msgspec.Struct):
    """CVAT's PatchedWebhookWriteRequest: only the fields sent change; type and project_id
    are set once."""

    target_url: str | msgspec.UnsetType = UNSET
    type: WebhookType | msgspec.UnsetType = UNSET
    events: list[str] | msgspec.UnsetType = UNSET
    description: str | msgspec.UnsetType = UNSET
    content_type: ContentType | msgspec.UnsetType = UNSET
    secret: str | msgspec.UnsetType = UNSET
    is_active: bool | msgspec.UnsetType = UNSET
    enable_ssl: bool | msgspec.UnsetType = UNSET
    project_id: int | None | msgspec.UnsetType = UNSET


# The fields an Updated event may change.
CHANGEABLE = ("target_url", "events", "description", "content_type", "is_active", "enable_ssl")


class Webhook(Entity):
    KIND = "webhook"

    class Created(Entity.Created):
        webhook_id: int
        target_url: str
        description: str
        type: str
        content_type: str
        is_active: bool
        enable_ssl: bool
        events: list[str]
        project_id: int | None
        organization_id: int | None
        owner_id: int | None

    def __init__(
        self,
        webhook_id: int,
        target_url: str,
        description: str,
        type: str,
        content_type: str,
        is_active: bool,
        enable_ssl: bool,
        events: list[str],
        project_id: int | None,
        organization_id: int | None,
        owner_id: int | None,
    ) -> None:
        self.webhook_id = webhook_id
        self.target_url = target_url
        self.description = description
        self.type = type
        self.content_type = content_type
        self.is_active = is_active
        self.enable_ssl = enable_ssl
        self.events = events
        self.project_id = project_id
        self.organization_id = organization_id
        self.owner_id = owner_id

    class Updated(Entity.Event):
        changes: dict[str, object]

        def apply(self, webhook: Webhook) -> None:
            for field, value in self.changes.items():
                setattr(webhook, field, value)


def manager_of(unit: Unit, project_id: int | None) -> int | None:
    """Who manages a project's webhooks besides admins and organization maintainers: the
    project's owner."""
    project = unit.find(Project, project_id) if project_id is not None else None
    return project.owner_id if project is not None and not project.deleted else None


def webhook_resource(
    manager_id: int | None, organization_id: int | None, webhook_id: object = ""
) -> Resource:
    """A webhook for the policy: its manager (the project's owner) and its organization."""
    return Resource("webhook", owner_id=manager_id, org_id=organization_id, ident=webhook_id)


def create_webhook(
    unit: Unit, principal: Principal, webhook_id: int, form: WebhookWrite
) -> Webhook:
    """Makes webhook `webhook_id` (its id and secret were stored by the caller)."""
    errors = ErrorCollector()
    _check_fields(errors, form.target_url, form.description, form.secret, form.events, form.type)
    project = None
    if form.type == "organization":
        if form.project_id is not None:
            errors.add("project_id", "An organization webhook has no project_id.")
        if principal.org_id is None:
            errors.add("type", NO_ORGANIZATION)
    elif form.project_id is None:
        errors.add("project_id", "A project webhook needs a project_id.")
    else:
        project = unit.find(Project, form.project_id)
        if project is None or project.deleted:
            errors.add("project_id", f'Invalid pk "{form.project_id}" - object does not exist.')
    errors.raise_if_any()
    if project is not None:
        resource = webhook_resource(project.owner_id, project.organization_id)
    else:
        resource = webhook_resource(None, principal.org_id)
    authorize(principal, Action.CREATE, resource)
    webhook = Webhook._start(
        webhook_id,
        webhook_id=webhook_id,
        target_url=form.target_url.strip(),
        description=form.description,
        type=form.type,
        content_type=form.content_type,
        is_active=form.is_active,
        enable_ssl=form.enable_ssl,
        events=sorted(set(form.events)),
        project_id=project.project_id if project is not None else None,
        organization_id=resource.org_id,
        owner_id=principal.id,
    )
    unit.add(webhook)
    return webhook


def _authorize_on(unit: Unit, principal: Principal, action: Action, webhook: Webhook) -> None:
    manager = manager_of(unit, webhook.project_id)
    authorize(
        principal, action, webhook_resource(manager, webhook.organization_id, webhook.webhook_id)
    )


def update_webhook(
    unit: Unit, principal: Principal, webhook_id: int, patch: WebhookPatch
) -> Webhook:
    webhook = unit.get(Webhook, webhook_id)
    _authorize_on(unit, principal, Action.CHANGE, webhook)
    errors = ErrorCollector()
    if patch.type is not UNSET and patch.type != webhook.type:
        errors.add("type", "The type of a webhook cannot be changed.")
    if patch.project_id is not UNSET and patch.project_id != webhook.project_id:
        errors.add("project_id", "The project of a webhook cannot be changed.")
    _check_fields(
        errors,
        None if patch.target_url is UNSET else patch.target_url,
        None if patch.description is UNSET else patch.description,
        None if patch.secret is UNSET else patch.secret,
        None if patch.events is UNSET else patch.events,
        webhook.type,
    )
    errors.raise_if_any()
    changes: dict[str, object] = {}
    for field in CHANGEABLE:
        value = getattr(patch, field)
        if value is UNSET:
            continue
        if field == "events":
            value = sorted(set(value))
        elif field == "target_url":
            value = value.strip()
        if value != getattr(webhook, field):
            changes[field] = value
    if changes:
        webhook.trigger_event(Webhook.Updated, changes=changes)
    return webhook


def replacement(form: WebhookWrite) -> WebhookPatch:
    """A PUT as the patch that sets every field."""
    return WebhookPatch(**{f: getattr(form, f) for f in WebhookWrite.__struct_fields__})


def delete_webhook(unit: Unit, principal: Principal, webhook_id: int) -> None:
    webhook = unit.get(Webhook, webhook_id)
    _authorize_on(unit, principal, Action.DELETE, webhook)
    webhook.delete()


def _check_fields(
    errors: ErrorCollector,
    target_url: str | None,
    description: str | None,
    secret: str | None,
    events: list[str] | None,
    webhook_type: str,
) -> None:
    if target_url is not None:
        reason = _url_problem(target_url.strip())
        if reason:
            errors.add("target_url", reason)
    if description is not None and len(description) > DESCRIPTION_MAX:
        errors.add(
            "description", f"Ensure this field has no more than {DESCRIPTION_MAX} characters."
        )
    if secret is not None and len(secret) > SECRET_MAX:
        errors.add("secret", f"Ensure this field has no more than {SECRET_MAX} characters.")
    if events is not None:
        if not events:
            errors.add("events", "This list may not be empty.")
        for key in events:
            if key not in EVENTS_OF_TYPE[webhook_type]:
                errors.add("events", f'"{key}" is not a valid choice for a {webhook_type} webhook.')


def _url_problem(url: str) -> str | None:
    if not url:
        return "This field may not be blank."
    if len(url) > TARGET_URL_MAX:
        return f"Ensure this field has no more than {TARGET_URL_MAX} characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        return "Enter a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter a valid URL."
    return None
