"""Embedded PostgreSQL and NATS (JetStream) servers for one-machine runs and tests."""

from infra.embedded_nats import EmbeddedNats
from infra.embedded_postgres import EmbeddedPostgres, postgres_home

__all__ = ["EmbeddedNats", "EmbeddedPostgres", "postgres_home"]
