"""The event store: one eventsourcing Application on PostgreSQL for every aggregate."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Transcoding

from core.accounts import AccountEmail, AccountName, User
from core.annotations import AnnotationState, LabeledData, ObjectIds
from core.client_events import ClientEventBatch
from core.cloud_storages import CloudStorage
from core.external_accounts import ExternalIdentity
from core.jobs import Job
from core.labels import AttributeSpec, LabelSpec
from core.organizations import Invitation, Organization, OrganizationSlug
from core.projects import Project
from core.quality_settings import QualitySettings
from core.review import CommentRef, Issue, ReviewState
from core.storage import StorageSpec
from core.task_data import FrameMeta, TaskData, ValidationLayout
from core.tasks import Task
from core.undo_book import UndoBook
from core.webhooks import Webhook

LARGE_VALUE_TYPES: tuple[type[msgspec.Struct], ...] = (
    LabeledData,
    AnnotationState,
    UndoBook,
    ReviewState,
)
EVENT_VALUE_TYPES: tuple[type[msgspec.Struct], ...] = (
    ObjectIds,
    AttributeSpec,
    LabelSpec,
    StorageSpec,
    FrameMeta,
    TaskData,
    ValidationLayout,
    Issue,
    CommentRef,
    Invitation,
    QualitySettings,
)


class StructAsDict(Transcoding):
    """Stores a msgspec Struct as its builtins; reads it back typed."""

    def __init__(self, struct_type: type[msgspec.Struct]) -> None:
        self.type = struct_type
        self.name = struct_type.__name__

    def encode(self, obj: Any) -> Any:
        return msgspec.to_builtins(obj)

    def decode(self, data: Any) -> Any:
        return msgspec.convert(data, self.type, strict=False)


class StructAsJson(Transcoding):
    """Stores a large Struct (annotations, undo stacks) as one msgspec JSON string: encoding
    and decoding stay in msgspec's C code instead of the standard json module's hooks."""

    def __init__(self, struct_type: type[msgspec.Struct]) -> None:
        self.type = struct_type
        self.name = f"{struct_type.__name__}.json"
        self._decoder = msgspec.json.Decoder(struct_type)

    def encode(self, obj: Any) -> str:
        return msgspec.json.encode(obj).decode()

    def decode(self, data: str) -> Any:
        return self._decoder.decode(data)


class Palimpsest(Application):
    """All aggregates in one application: one events table, one notification log."""

    name = "Palimpsest"
    aggregate_types = (
        User,
        AccountName,
        AccountEmail,
        ExternalIdentity,
        Project,
        Task,
        Job,
        Organization,
        OrganizationSlug,
        ClientEventBatch,
        Webhook,
        CloudStorage,
    )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for struct_type in EVENT_VALUE_TYPES:
            transcoder.register(StructAsDict(struct_type))
        for struct_type in LARGE_VALUE_TYPES:
            transcoder.register(StructAsJson(struct_type))


def store_environment(database_url: str) -> dict[str, str]:
    """The eventsourcing settings for a libpq URL (TCP or a unix-socket `host=` query)."""
    parts = urlsplit(database_url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = query.get("host") or parts.hostname or "127.0.0.1"
    port = query.get("port") or (str(parts.port) if parts.port else "5432")
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": port,
        "POSTGRES_USER": unquote(parts.username or query.get("user", "postgres")),
        "POSTGRES_PASSWORD": unquote(parts.password or query.get("password", "")),
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "8",
        "IS_SNAPSHOTTING_ENABLED": "y",
        # Insert through the library's database function: psycopg 3.3.9's pipeline mode
        # hangs on an insert of about 500 kB or more over a Unix socket (a 2,000-shape PUT).
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y",
        "APPLICATION_RECORDER_TOPIC": "infra.recorder:TransactionalRecorder",
    }


def open_store(database_url: str) -> Palimpsest:
    return Palimpsest(env=store_environment(database_url))
