"""/api/cloudstorages: CVAT's cloud storage API (CRUD, status, content, preview, actions).

Credentials are sealed into `cloud_storage_credentials`, outside of the log, and never
returned: on attaching they are stored (under a new id) before the Created event is saved and
dropped if the command fails; changed ones are stored once the change is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import msgspec
import numpy as np
from psycopg import sql
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.cloud_storages import (
    CloudStoragePatch,
    CloudStorageWrite,
    Credentials,
    check_object_key,
    checked_attributes,
    create_cloud_storage,
    delete_cloud_storage,
    update_cloud_storage,
)
from core.errors import NotFound, ValidationFailed
from core.permissions import Action, Principal
from infra.buckets import Bucket, BucketError
from infra.credentials import CredentialStore, CredentialsUnreadable
from projections.list_query import Field, ListSpec
from web.context import allowed, base_url, execute, path_id, permitted, query_int, runtime
from web.errors import BadRequest
from web.pagination import Listing, list_response
from web.representations import with_user_url
from web.responses import json_response, read_body
from workers.images import MediaError, preview_of
from workers.media.manifest import Manifest, parse_manifest

Doc = dict[str, Any]
CONTENT_PAGE_MAX = 1000
PREVIEW_SOURCE_MAX = 32 << 20


def cloud_storage_json(doc: Doc, base: str) -> Doc:
    return {**doc, "owner": with_user_url(doc["owner"], base)}


CLOUD_STORAGES = Listing(
    table="catalog_cloud_storages",
    spec=ListSpec(
        fields={
            "id": Field(sql.Identifier("id"), "int", cast=False),
            "display_name": Field(sql.SQL("doc->>'display_name'"), "text"),
            "provider_type": Field(sql.SQL("doc->>'provider_type'"), "text"),
            "resource": Field(sql.SQL("doc->>'resource'"), "text"),
            "credentials_type": Field(sql.SQL("doc->>'credentials_type'"), "text"),
            "description": Field(sql.SQL("doc->>'description'"), "text"),
            "owner": Field(sql.SQL("doc->'owner'->>'username'"), "text"),
            "updated_date": Field(sql.SQL("doc->>'updated_date'"), "datetime"),
        },
        search_fields=("display_name", "resource", "description", "owner"),
        simple_filters=(
            "id",
            "display_name",
            "provider_type",
            "resource",
            "credentials_type",
            "description",
            "owner",
        ),
        ordering_fields=("id", "display_name", "provider_type", "resource", "owner"),
        default_order="-id",
    ),
    render=cloud_storage_json,
    kind="cloudstorage",
)


def credential_store(request: Request) -> CredentialStore:
    state = request.app.state
    if getattr(state, "credentials", None) is None:
        rt = runtime(request)
        state.credentials = CredentialStore(rt.pool, rt.settings)
    return state.credentials


async def cloud_storages_list(request: Request) -> Response:
    allowed(request, Action.LIST, "cloudstorage")
    return await list_response(request, CLOUD_STORAGES)


async def cloud_storage_create(request: Request) -> Response:
    caller = allowed(request, Action.CREATE, "cloudstorage")
    form = await read_body(request, CloudStorageWrite)
    await _check_reachable(form)
    store = credential_store(request)
    storage_id = await run_in_threadpool(store.new, form.credentials())
    try:
        await execute(request, lambda unit: create_cloud_storage(unit, caller, storage_id, form))
    except BaseException:
        await run_in_threadpool(store.drop, storage_id)
        raise
    doc = await load_doc(request, storage_id)
    return json_response(cloud_storage_json(doc, base_url(request)), status=201)


async def _check_reachable(form: CloudStorageWrite) -> None:
    """As CVAT does, a storage is attached only if its bucket answers and holds its
    manifests."""
    doc = {
        "resource": form.resource,
        "credentials_type": form.credentials_type,
        "specific_attributes": checked_attributes(form),
    }
    bucket = Bucket.of(doc, form.credentials())
    try:
        status = await bucket.status()
        if status == "FORBIDDEN":
            raise BadRequest({"credentials": [f"the bucket {form.resource} refuses access"]})
        if status == "NOT_FOUND":
            raise BadRequest({"resource": [f"the bucket {form.resource} was not found"]})
        absent = await bucket.missing(form.manifests)
    except BucketError as error:
        raise BadRequest({"resource": [str(error)]}) from None
    if absent:
        raise BadRequest({"manifests": [f"{', '.join(absent)} not found in the bucket"]})


async def cloud_storage_detail(request: Request) -> Response:
    doc, _ = await permitted_storage(request, Action.VIEW, path_id(request))
    return json_response(cloud_storage_json(doc, base_url(request)))


async def cloud_storage_update(request: Request) -> Response:
    caller, storage_id = await _caller_for(request, Action.CHANGE)
    patch = await read_body(request, CloudStoragePatch)
    credentials = None
    if patch.changes_credentials():
        try:
            old = await run_in_threadpool(credential_store(request).get, storage_id)
        except CredentialsUnreadable:
            old = Credentials()  # sealed under another key: the patch must give new ones
        credentials = _merged_credentials(old, patch)
    if patch.changes_bucket():
        current = credentials or await _credentials_of(request, storage_id)
        await _check_reachable(_patched_form(await load_doc(request, storage_id), patch, current))
    await execute(
        request, lambda unit: update_cloud_storage(unit, caller, storage_id, patch, credentials)
    )
    if credentials is not None:
        await run_in_threadpool(credential_store(request).put, storage_id, credentials)
    doc = await load_doc(request, storage_id)
    return json_response(cloud_storage_json(doc, base_url(request)))


def _patched_form(
    doc: Doc, patch: CloudStoragePatch, credentials: Credentials
) -> CloudStorageWrite:
    """The storage as it would be after the patch, to check before the change is saved."""

    def given(field: str) -> Any:
        value = getattr(patch, field)
        return doc[field] if value is msgspec.UNSET else value

    return CloudStorageWrite(
        provider_type=doc["provider_type"],
        resource=given("resource"),
        display_name=given("display_name"),
        credentials_type=given("credentials_type"),
        key=credentials.key,
        secret_key=credentials.secret_key,
        session_token=credentials.session_token,
        specific_attributes=given("specific_attributes"),
        prefix="" if patch.prefix is msgspec.UNSET else patch.prefix,
        manifests=given("manifests"),
        description=given("description"),
    )


def _merged_credentials(old: Credentials, patch: CloudStoragePatch) -> Credentials:
    def pick(value: object, current: str) -> str:
        return value if isinstance(value, str) else current

    if patch.credentials_type == "ANONYMOUS_ACCESS":
        return Credentials()
    return Credentials(
        key=pick(patch.key, old.key),
        secret_key=pick(patch.secret_key, old.secret_key),
        session_token=pick(patch.session_token, old.session_token),
    )


async def cloud_storage_delete(request: Request) -> Response:
    caller, storage_id = await _caller_for(request, Action.DELETE)
    await execute(request, lambda unit: delete_cloud_storage(unit, caller, storage_id))
    await run_in_threadpool(credential_store(request).drop, storage_id)
    return Response(status_code=204)


async def cloud_storage_status(request: Request) -> Response:
    _, bucket = await usable_bucket(request, path_id(request))
    try:
        status = await bucket.status()
    except BucketError as error:
        raise BadRequest(str(error)) from None
    return json_response(status)


async def cloud_storage_content(request: Request) -> Response:
    """CVAT's content-v2: one page of a folder of the bucket (or of the manifest's names)."""
    doc, bucket = await usable_bucket(request, path_id(request))
    prefix = request.query_params.get("prefix", "")
    if prefix:
        check_query_key(prefix.rstrip("/"), "prefix")
        prefix = prefix.rstrip("/") + "/"
    page_size = query_int(request, "page_size", CONTENT_PAGE_MAX) or CONTENT_PAGE_MAX
    if not 1 <= page_size <= CONTENT_PAGE_MAX:
        raise BadRequest({"page_size": [f"must be between 1 and {CONTENT_PAGE_MAX}"]})
    manifest_path = request.query_params.get("manifest_path")
    try:
        if manifest_path:
            check_query_key(manifest_path, "manifest_path")
            if manifest_path not in doc["manifests"]:
                raise BadRequest({"manifest_path": [f"{manifest_path} is not a manifest of it"]})
            return json_response(await _manifest_content(request, bucket, manifest_path, prefix))
        entries, next_token = await bucket.list(
            prefix, page_size, request.query_params.get("next_token") or None
        )
    except BucketError as error:
        raise BadRequest(str(error)) from None
    return json_response({"content": [entry.json() for entry in entries], "next": next_token})


async def _manifest_content(
    request: Request, bucket: Bucket, manifest_path: str, prefix: str
) -> Doc:
    manifest = await _read_manifest(bucket, manifest_path)
    folders: dict[str, None] = {}
    files: list[Doc] = []
    for name in manifest.file_names():
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        if "/" in rest:
            folders[rest.split("/", 1)[0]] = None
        else:
            files.append({"name": rest, "type": "REG", "mime_type": "image"})
    content = [{"name": n, "type": "DIR", "mime_type": "DIR"} for n in folders] + files
    return {"content": content, "next": None}


async def _read_manifest(bucket: Bucket, key: str) -> Manifest:
    try:
        return parse_manifest(await bucket.read(key))
    except MediaError as error:
        raise BadRequest({"manifest_path": [str(error)]}) from None


async def cloud_storage_preview(request: Request) -> Response:
    """A thumbnail of the first image of its first manifest, or of its first listed image."""
    doc, bucket = await usable_bucket(request, path_id(request))
    try:
        if doc["manifests"]:
            manifest = await _read_manifest(bucket, doc["manifests"][0])
            names = manifest.file_names()[:1]
        else:
            entries, _ = await bucket.list("", CONTENT_PAGE_MAX, None)
            names = [e.name for e in entries if e.json()["mime_type"] == "image"][:1]
        if not names:
            raise NotFound("preview of cloud storage", doc["id"])
        raw = await bucket.read(bucket.prefix + names[0], PREVIEW_SOURCE_MAX)
    except BucketError as error:
        raise BadRequest(str(error)) from None
    body = await run_in_threadpool(_thumbnail, raw, names[0])
    return Response(body, media_type="image/jpeg")


def _thumbnail(raw: bytes, name: str) -> bytes:
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BadRequest(f"{name} is not an image that can be decoded")
    return preview_of(image, name)


def check_query_key(key: str, field: str) -> None:
    try:
        check_object_key(key, field)
    except ValidationFailed as error:
        raise BadRequest(error.errors) from None


# Exports


@dataclass(frozen=True)
class ExportTarget:
    """Where an export goes when the request says `location=cloud_storage`."""

    bucket: Bucket
    file_name: str | None

    async def put(self, source: Path) -> str:
        """Uploads the finished export; returns its key in the bucket."""
        key = self.bucket.prefix + (self.file_name or source.name)
        try:
            await self.bucket.upload(source, key)
        except BucketError as error:
            raise MediaError(str(error)) from None
        return key


async def export_target(request: Request, default: Doc | None) -> ExportTarget | None:
    """None for a local export; else the bucket (which the caller may use) and file name.
    Without `location` the export goes where the resource's target storage says (CVAT's
    rule)."""
    default = default or {}
    location = request.query_params.get("location") or default.get("location") or "local"
    if location == "local":
        return None
    if location != "cloud_storage":
        raise BadRequest({"location": [f"{location!r} is not local or cloud_storage"]})
    storage_id = query_int(request, "cloud_storage_id")
    if storage_id is None and "location" not in request.query_params:
        storage_id = default.get("cloud_storage_id")
    if storage_id is None:
        raise BadRequest({"cloud_storage_id": ["an export to a cloud storage needs its id"]})
    file_name = request.query_params.get("filename") or None
    if file_name is not None:
        check_query_key(file_name, "filename")
    _, bucket = await usable_bucket(request, storage_id)
    return ExportTarget(bucket, file_name)


async def import_from_bucket(request: Request, folder: Path) -> Path:
    """The file an import names with `location=cloud_storage`: the object `filename` (under
    the storage's prefix, where exports put theirs) of storage `cloud_storage_id`, which the
    caller may use, downloaded into `folder`."""
    storage_id = query_int(request, "cloud_storage_id")
    if storage_id is None:
        raise BadRequest({"cloud_storage_id": ["an import from a cloud storage needs its id"]})
    key = request.query_params.get("filename") or ""
    if not key:
        raise BadRequest({"filename": ["name the file in the cloud storage"]})
    check_query_key(key, "filename")
    _, bucket = await usable_bucket(request, storage_id)
    try:
        await bucket.download([bucket.prefix + key], folder)
    except BucketError as error:
        raise BadRequest({"filename": [str(error)]}) from None
    return folder / (bucket.prefix + key)


# Access


async def load_doc(request: Request, storage_id: int) -> Doc:
    pool = runtime(request).pool

    def run() -> Doc | None:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT doc FROM catalog_cloud_storages WHERE id = %s", (storage_id,)
            ).fetchone()
        return row[0] if row else None

    doc = await run_in_threadpool(run)
    if doc is None:
        raise NotFound("cloud storage", storage_id)
    return doc


async def permitted_storage(
    request: Request, action: Action, storage_id: int
) -> tuple[Doc, Principal]:
    """The storage's document if the caller may take `action` on it: 404 when they may not
    see it (or it does not exist), 403 when they see it but may not do this."""
    caller = await permitted(request, action, "cloudstorage", storage_id)
    return await load_doc(request, storage_id), caller


async def usable_bucket(request: Request, storage_id: int) -> tuple[Doc, Bucket]:
    """The storage's document and bucket, if the caller may use it (view it)."""
    doc, _ = await permitted_storage(request, Action.VIEW, storage_id)
    return doc, Bucket.of(doc, await _credentials_of(request, storage_id))


async def _credentials_of(request: Request, storage_id: int) -> Credentials:
    try:
        return await run_in_threadpool(credential_store(request).get, storage_id)
    except CredentialsUnreadable as error:
        raise BadRequest(f"{error}; give its key and secret_key again") from None


async def _caller_for(request: Request, action: Action) -> tuple[Principal, int]:
    storage_id = path_id(request)
    _, caller = await permitted_storage(request, action, storage_id)
    return caller, storage_id


ROUTES = [
    Route("/api/cloudstorages", cloud_storages_list, methods=["GET"]),
    Route("/api/cloudstorages", cloud_storage_create, methods=["POST"]),
    Route("/api/cloudstorages/{id:int}", cloud_storage_detail, methods=["GET"]),
    Route("/api/cloudstorages/{id:int}", cloud_storage_update, methods=["PATCH"]),
    Route("/api/cloudstorages/{id:int}", cloud_storage_delete, methods=["DELETE"]),
    Route("/api/cloudstorages/{id:int}/status", cloud_storage_status, methods=["GET"]),
    Route("/api/cloudstorages/{id:int}/content", cloud_storage_content, methods=["GET"]),
    Route("/api/cloudstorages/{id:int}/content-v2", cloud_storage_content, methods=["GET"]),
    Route("/api/cloudstorages/{id:int}/preview", cloud_storage_preview, methods=["GET"]),
]
