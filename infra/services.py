"""Which PostgreSQL and NATS to use: the configured ones, or embedded ones under the data dir."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from infra.database import ensure_database
from infra.embedded import EmbeddedNats, EmbeddedPostgres, postgres_home
from infra.settings import Settings

DATABASE_NAME = "palimpsest"


@dataclass
class Services:
    database_url: str
    nats_url: str
    embedded: list[EmbeddedPostgres | EmbeddedNats] = field(default_factory=list)

    @classmethod
    def start(cls, settings: Settings) -> Services:
        embedded: list[EmbeddedPostgres | EmbeddedNats] = []
        database_url = settings.database_url
        if database_url is None:
            postgres = EmbeddedPostgres(postgres_home(settings.data_dir))
            embedded.append(postgres)
            server_url = postgres.start()
            ensure_database(server_url, DATABASE_NAME)
            database_url = with_database(server_url, DATABASE_NAME)
        nats_url = settings.nats_url
        if nats_url is None:
            nats = EmbeddedNats(settings.data_dir / "nats")
            embedded.append(nats)
            nats_url = nats.start()
        return cls(database_url, nats_url, embedded)

    def stop(self) -> None:
        for server in reversed(self.embedded):
            server.stop()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))
