"""Cloud storages (CVAT's /api/cloudstorages): a bucket attached by a user or an organization.

A cloud storage is an aggregate; attaching, changing and detaching it are events with their
actor. Its credentials are not: they are sealed and stored outside the log (see
infra/credentials.py), as webhook secrets are. Only S3-speaking buckets are supported.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec

from core.aggregate import Entity
from core.errors import ErrorCollector, ValidationFailed
from core.permissions import (
    Action,
    Principal,
    Resource,
    authorize,
    check_may_create_in_organization,
)
from core.units import Unit

UNSET = msgspec.UNSET
ProviderType = Literal["AWS_S3_BUCKET", "AZURE_CONTAINER", "GOOGLE_CLOUD_STORAGE"]
CredentialsType = Literal[
    "KEY_SECRET_KEY_PAIR", "ACCOUNT_NAME_TOKEN_PAIR", "KEY_FILE_PATH", "ANONYMOUS_ACCESS"
]
SUPPORTED_PROVIDERS = ("AWS_S3_BUCKET",)
SUPPORTED_CREDENTIALS = ("KEY_SECRET_KEY_PAIR", "ANONYMOUS_ACCESS")
SPECIFIC_ATTRIBUTES = ("region", "endpoint_url", "prefix")
DISPLAY_NAME_MAX = 63
DESCRIPTION_MAX = 1024
KEY_MAX = 128
SECRET_MAX = 1024
# S3's bucket naming rules (lower case letters, digits, dots and hyphens, 3 to 63 long).
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class Credentials(msgspec.Struct):
    """What signs requests to the bucket; never in the log, never returned."""

    key: str = ""
    secret_key: str = ""
    session_token: str = ""


class CloudStorageWrite(msgspec.Struct):
    """CVAT's CloudStorageWriteRequest (POST), with `prefix` also accepted on its own."""

    provider_type: ProviderType
    resource: str
    display_name: str
    credentials_type: CredentialsType
    key: str = ""
    secret_key: str = ""
    session_token: str = ""
    account_name: str = ""
    key_file: str = ""
    specific_attributes: str = ""
    prefix: str = ""
    manifests: list[str] = []
    description: str = ""

    def credentials(self) -> Credentials:
        return Credentials(self.key, self.secret_key, self.session_token)


class CloudStoragePatch(msgspec.Struct):
    """CVAT's PatchedCloudStorageWriteRequest: only the fields sent change."""

    provider_type: ProviderType | msgspec.UnsetType = UNSET
    resource: str | msgspec.UnsetType = UNSET
    display_name: str | msgspec.UnsetType = UNSET
    credentials_type: CredentialsType | msgspec.UnsetType = UNSET
    key: str | msgspec.UnsetType = UNSET
    secret_key: str | msgspec.UnsetType = UNSET
    session_token: str | msgspec.UnsetType = UNSET
    account_name: str | msgspec.UnsetType = UNSET
    key_file: str | msgspec.UnsetType = UNSET
    specific_attributes: str | msgspec.UnsetType = UNSET
    prefix: str | msgspec.UnsetType = UNSET
    manifests: list[str] | msgspec.UnsetType = UNSET
    description: str | msgspec.UnsetType = UNSET

    def changes_bucket(self) -> bool:
        """Whether the patch changes which bucket is reached, how, or its manifests."""
        return self.changes_credentials() or any(
            value is not UNSET
            for value in (self.resource, self.specific_attributes, self.prefix, self.manifests)
        )

    def changes_credentials(self) -> bool:
        return any(
            value is not UNSET for value in (self.key, self.secret_key, self.session_token)
        ) or (self.credentials_type is not UNSET)


# The fields an Updated event may change.
CHANGEABLE = (
    "resource",
    "display_name",
    "credentials_type",
    "specific_attributes",
    "manifests",
    "description",
)


class CloudStorage(Entity):
    KIND = "cloudstorage"

    class Created(Entity.Created):
        cloud_storage_id: int
        provider_type: str
        resource: str
        display_name: str
        credentials_type: str
        specific_attributes: str
        manifests: list[str]
        description: str
        owner_id: int | None
        organization_id: int | None

    def __init__(
        self,
        cloud_storage_id: int,
        provider_type: str,
        resource: str,
        display_name: str,
        credentials_type: str,
        specific_attributes: str,
        manifests: list[str],
        description: str,
        owner_id: int | None,
        organization_id: int | None,
    ) -> None:
        self.cloud_storage_id = cloud_storage_id
        self.provider_type = provider_type
        self.resource = resource
        self.display_name = display_name
        self.credentials_type = credentials_type
        self.specific_attributes = specific_attributes
        self.manifests = manifests
        self.description = description
        self.owner_id = owner_id
        self.organization_id = organization_id

    class Updated(Entity.Event):
        changes: dict[str, object]

        def apply(self, storage: CloudStorage) -> None:
            for field, value in self.changes.items():
                setattr(storage, field, value)

    def resource_for_permissions(self) -> Resource:
        return Resource(
            "cloudstorage",
            owner_id=self.owner_id,
            org_id=self.organization_id,
            ident=self.cloud_storage_id,
        )


def create_cloud_storage(
    unit: Unit, principal: Principal, storage_id: int, form: CloudStorageWrite
) -> CloudStorage:
    """Attaches cloud storage `storage_id` (its id and credentials were stored by the caller)."""
    check_may_create_in_organization(principal, "cloud storage")
    attributes = checked_attributes(form)
    storage = CloudStorage._start(
        storage_id,
        cloud_storage_id=storage_id,
        provider_type=form.provider_type,
        resource=form.resource,
        display_name=form.display_name.strip(),
        credentials_type=form.credentials_type,
        specific_attributes=attributes,
        manifests=list(dict.fromkeys(form.manifests)),
        description=form.description,
        owner_id=principal.id,
        organization_id=principal.org_id,
    )
    unit.add(storage)
    return storage


def checked_attributes(form: CloudStorageWrite) -> str:
    """Checks every field of a new storage; returns its specific_attributes as stored (the
    prefix folded in)."""
    errors = ErrorCollector()
    attributes = _check_fields(
        errors,
        provider_type=form.provider_type,
        resource=form.resource,
        display_name=form.display_name,
        credentials_type=form.credentials_type,
        credentials=form.credentials(),
        specific_attributes=form.specific_attributes,
        prefix=form.prefix,
        manifests=form.manifests,
        description=form.description,
    )
    errors.raise_if_any()
    return attributes


def update_cloud_storage(
    unit: Unit,
    principal: Principal,
    storage_id: int,
    patch: CloudStoragePatch,
    credentials: Credentials | None,
) -> CloudStorage:
    """Changes the fields the patch sends; `credentials` are the new ones when it sends any."""
    storage = unit.get(CloudStorage, storage_id)
    authorize(principal, Action.CHANGE, storage.resource_for_permissions())
    errors = ErrorCollector()
    if patch.provider_type is not UNSET and patch.provider_type != storage.provider_type:
        errors.add("provider_type", "The provider of a cloud storage cannot be changed.")

    def given(value: object, current: object) -> object:
        return current if value is UNSET else value

    current_prefix = dict(parse_qsl(storage.specific_attributes)).get("prefix", "")
    attributes = _check_fields(
        errors,
        provider_type=storage.provider_type,
        resource=given(patch.resource, storage.resource),
        display_name=given(patch.display_name, storage.display_name),
        credentials_type=given(patch.credentials_type, storage.credentials_type),
        credentials=credentials,
        specific_attributes=given(patch.specific_attributes, storage.specific_attributes),
        prefix=given(patch.prefix, current_prefix),
        manifests=given(patch.manifests, storage.manifests),
        description=given(patch.description, storage.description),
    )
    errors.raise_if_any()
    changes: dict[str, object] = {}
    for field in CHANGEABLE:
        value = getattr(patch, field)
        if field == "specific_attributes":
            value = attributes
        elif value is UNSET:
            continue
        elif field == "manifests":
            value = list(dict.fromkeys(value))
        elif field == "display_name":
            value = value.strip()
        if value != getattr(storage, field):
            changes[field] = value
    if changes:
        storage.trigger_event(CloudStorage.Updated, changes=changes)
    return storage


def delete_cloud_storage(unit: Unit, principal: Principal, storage_id: int) -> None:
    storage = unit.get(CloudStorage, storage_id)
    authorize(principal, Action.DELETE, storage.resource_for_permissions())
    storage.delete()


def is_safe_key(key: str) -> bool:
    """Whether a bucket key (or a file name in a manifest) is a plain relative path: not
    absolute, no `..` or empty parts, no backslashes or NULs."""
    return (
        0 < len(key) <= 1024
        and not key.startswith("/")
        and "\\" not in key
        and "\x00" not in key
        and all(part not in ("", ".", "..") for part in key.split("/"))
    )


def check_object_key(key: str, field: str) -> str:
    if not is_safe_key(key):
        raise ValidationFailed.one(field, f"{key!r} is not a usable object name")
    return key


def split_attributes(specific_attributes: str) -> dict[str, str]:
    return dict(parse_qsl(specific_attributes, keep_blank_values=False))


def _check_fields(
    errors: ErrorCollector,
    *,
    provider_type: object,
    resource: object,
    display_name: object,
    credentials_type: object,
    credentials: Credentials | None,
    specific_attributes: object,
    prefix: object,
    manifests: object,
    description: object,
) -> str:
    """Checks every field; returns specific_attributes as stored (the prefix folded in)."""
    if provider_type not in SUPPORTED_PROVIDERS:
        errors.add("provider_type", f"{provider_type} is not supported; use AWS_S3_BUCKET")
    assert isinstance(resource, str) and isinstance(display_name, str)
    if not BUCKET_NAME.fullmatch(resource) or ".." in resource:
        errors.add("resource", f"{resource!r} is not a valid S3 bucket name")
    if not display_name.strip():
        errors.add("display_name", "This field may not be blank.")
    _check_length(errors, "display_name", display_name, DISPLAY_NAME_MAX)
    if credentials_type not in SUPPORTED_CREDENTIALS:
        errors.add("credentials_type", f"{credentials_type} is not supported for S3 buckets")
    if credentials is not None:
        if credentials_type == "KEY_SECRET_KEY_PAIR":
            if not credentials.key:
                errors.add("key", "A key is required for KEY_SECRET_KEY_PAIR.")
            if not credentials.secret_key:
                errors.add("secret_key", "A secret key is required for KEY_SECRET_KEY_PAIR.")
        elif credentials_type == "ANONYMOUS_ACCESS" and (credentials.key or credentials.secret_key):
            errors.add("key", "Anonymous access takes no key or secret key.")
        _check_length(errors, "key", credentials.key, KEY_MAX)
        _check_length(errors, "secret_key", credentials.secret_key, SECRET_MAX)
    assert isinstance(specific_attributes, str) and isinstance(prefix, str)
    attributes = split_attributes(specific_attributes)
    for name in attributes:
        if name not in SPECIFIC_ATTRIBUTES:
            errors.add("specific_attributes", f"unknown attribute {name!r}")
    endpoint = attributes.get("endpoint_url")
    if endpoint is not None:
        try:
            parts = urlsplit(endpoint)
            parts.port  # noqa: B018  (raises on a bad port)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(endpoint)
        except ValueError:
            errors.add("specific_attributes", f"endpoint_url {endpoint!r} is not a valid URL")
    region = attributes.get("region")
    if region is not None and not re.fullmatch(r"[a-z0-9-]{1,32}", region):
        errors.add("specific_attributes", f"region {region!r} is not a valid region")
    if prefix:
        attributes["prefix"] = prefix
    stored_prefix = attributes.get("prefix", "")
    if stored_prefix:
        try:
            check_object_key(stored_prefix.rstrip("/"), "prefix")
        except ValidationFailed:
            errors.add("prefix", f"{stored_prefix!r} is not a usable prefix")
    assert isinstance(manifests, list)
    for index, name in enumerate(manifests):
        if not isinstance(name, str) or not name.endswith(".jsonl"):
            errors.add(f"manifests[{index}]", "A manifest is a .jsonl file.")
            continue
        try:
            check_object_key(name, f"manifests[{index}]")
        except ValidationFailed as error:
            for path, reasons in error.errors.items():
                for reason in reasons:
                    errors.add(path, reason)
    assert isinstance(description, str)
    _check_length(errors, "description", description, DESCRIPTION_MAX)
    return urlencode(attributes)


def _check_length(errors: ErrorCollector, field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        errors.add(field, f"Ensure this field has no more than {limit} characters.")
