"""Cloud storage credentials, sealed (Fernet: AES-128-CBC with HMAC-SHA256) outside the log.

The key comes from PALIMPSEST_SECRET_KEY (any string; its SHA-256 is the key) or, when that
is unset, from DATA_DIR/secret.key, generated on first use. Every server instance sharing a
database must share the key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from pathlib import Path

import msgspec
from cryptography.fernet import Fernet, InvalidToken
from psycopg_pool import ConnectionPool

from core.cloud_storages import Credentials
from infra.settings import Settings

KEY_FILE = "secret.key"
_lock = threading.Lock()


class CredentialsUnreadable(RuntimeError):
    """The stored credentials were sealed with another key."""


def fernet_for(settings: Settings) -> Fernet:
    if settings.secret_key:
        digest = hashlib.sha256(settings.secret_key.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))
    return Fernet(_key_file(settings.data_dir))


def _key_file(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    with _lock:
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                out.write(Fernet.generate_key())
        return path.read_bytes().strip()


class CredentialStore:
    def __init__(self, pool: ConnectionPool, settings: Settings) -> None:
        self._pool = pool
        self._fernet = fernet_for(settings)

    def new(self, credentials: Credentials) -> int:
        """Takes a cloud storage id and stores the credentials under it; returns the id."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO cloud_storage_credentials (cloud_storage_id, sealed)"
                " VALUES (nextval('palimpsest_cloudstorage_id'), %s) RETURNING cloud_storage_id",
                (self._seal(credentials),),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def put(self, storage_id: int, credentials: Credentials) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO cloud_storage_credentials (cloud_storage_id, sealed) VALUES (%s, %s)"
                " ON CONFLICT (cloud_storage_id) DO UPDATE SET sealed = EXCLUDED.sealed",
                (storage_id, self._seal(credentials)),
            )

    def get(self, storage_id: int) -> Credentials:
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT sealed FROM cloud_storage_credentials WHERE cloud_storage_id = %s",
                (storage_id,),
            ).fetchone()
        if row is None:
            return Credentials()
        try:
            return msgspec.json.decode(self._fernet.decrypt(bytes(row[0])), type=Credentials)
        except InvalidToken:
            raise CredentialsUnreadable(
                f"the credentials of cloud storage {storage_id} were sealed with another"
                " PALIMPSEST_SECRET_KEY"
            ) from None

    def drop(self, storage_id: int) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                "DELETE FROM cloud_storage_credentials WHERE cloud_storage_id = %s", (storage_id,)
            )

    def _seal(self, credentials: Credentials) -> bytes:
        return self._fernet.encrypt(msgspec.json.encode(credentials))
