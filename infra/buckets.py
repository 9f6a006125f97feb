"""Talking to an S3-speaking bucket (aioboto3): status, listing, reading and writing objects."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aioboto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.cloud_storages import Credentials, split_attributes

Status = Literal["AVAILABLE", "NOT_FOUND", "FORBIDDEN"]
PARALLEL_DOWNLOADS = 8
TIMEOUTS = {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 2}}


class BucketError(Exception):
    """The bucket could not be reached or refused a request; the message says which."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Entry:
    name: str  # relative to the listed prefix
    type: Literal["REG", "DIR"]

    def json(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "mime_type": mime_type_of(self)}


def mime_type_of(entry: Entry) -> str:
    if entry.type == "DIR":
        return "DIR"
    guessed = mimetypes.guess_type(entry.name)[0] or ""
    kind = guessed.split("/", 1)[0]
    return kind if kind in ("image", "video") else "unknown"


@dataclass(frozen=True)
class Bucket:
    """One storage's bucket, as its document and sealed credentials describe it."""

    name: str
    credentials_type: str
    credentials: Credentials
    region: str | None = None
    endpoint_url: str | None = None
    prefix: str = ""

    @classmethod
    def of(cls, doc: dict[str, Any], credentials: Credentials) -> Bucket:
        attributes = split_attributes(doc.get("specific_attributes", ""))
        return cls(
            name=doc["resource"],
            credentials_type=doc["credentials_type"],
            credentials=credentials,
            region=attributes.get("region"),
            endpoint_url=attributes.get("endpoint_url"),
            prefix=attributes.get("prefix", ""),
        )

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        anonymous = self.credentials_type == "ANONYMOUS_ACCESS"
        session = aioboto3.Session(
            aws_access_key_id=None if anonymous else self.credentials.key,
            aws_secret_access_key=None if anonymous else self.credentials.secret_key,
            aws_session_token=None if anonymous else (self.credentials.session_token or None),
            region_name=self.region or "us-east-1",
        )
        config = Config(signature_version=UNSIGNED, **TIMEOUTS) if anonymous else Config(**TIMEOUTS)
        try:
            async with session.client("s3", endpoint_url=self.endpoint_url, config=config) as s3:
                yield s3
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise BucketError(_reason(error, self.name), status) from None
        except BotoCoreError as error:
            raise BucketError(f"the bucket {self.name} could not be reached: {error}") from None

    async def status(self) -> Status:
        try:
            async with self._client() as s3:
                await s3.head_bucket(Bucket=self.name)
        except BucketError as error:
            if error.status == 404:
                return "NOT_FOUND"
            if error.status in (401, 403):
                return "FORBIDDEN"
            raise
        return "AVAILABLE"

    async def list(
        self, prefix: str, page_size: int, next_token: str | None
    ) -> tuple[list[Entry], str | None]:
        """One page of the folder `prefix` (under the storage's prefix): its sub-folders and
        files, names relative to it; and the token of the next page, if any."""
        folder = self.prefix + prefix
        arguments: dict[str, Any] = {
            "Bucket": self.name,
            "Prefix": folder,
            "Delimiter": "/",
            "MaxKeys": page_size,
        }
        if next_token:
            arguments["ContinuationToken"] = next_token
        async with self._client() as s3:
            page = await s3.list_objects_v2(**arguments)
        entries = [
            Entry(common["Prefix"][len(folder) :].rstrip("/"), "DIR")
            for common in page.get("CommonPrefixes", [])
        ]
        entries += [
            Entry(item["Key"][len(folder) :], "REG")
            for item in page.get("Contents", [])
            if item["Key"] != folder
        ]
        entries.sort(key=lambda entry: (entry.type != "DIR", entry.name))
        return entries, page.get("NextContinuationToken") if page.get("IsTruncated") else None

    async def missing(self, keys: list[str]) -> list[str]:
        """The keys that name no object of the bucket."""
        absent = []
        async with self._client() as s3:
            for key in keys:
                try:
                    await s3.head_object(Bucket=self.name, Key=key)
                except ClientError as error:
                    if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                        raise
                    absent.append(key)
        return absent

    async def read(self, key: str, limit: int = 64 << 20) -> bytes:
        async with self._client() as s3:
            found = await s3.get_object(Bucket=self.name, Key=key)
            if found["ContentLength"] > limit:
                raise BucketError(f"{key} is larger than {limit} bytes")
            async with found["Body"] as body:
                return await body.read()

    async def download(self, keys: list[str], target: Path) -> None:
        """Copies the objects to `target`, each at its key's path, a few at a time."""
        slots = asyncio.Semaphore(PARALLEL_DOWNLOADS)

        async def fetch(s3: Any, key: str) -> None:
            path = target / key
            path.parent.mkdir(parents=True, exist_ok=True)
            async with slots:
                await s3.download_file(self.name, key, str(path))

        async with self._client() as s3:
            await asyncio.gather(*(fetch(s3, key) for key in keys))

    async def keys_under(self, folder: str, limit: int) -> list[str]:
        """Every object key under `folder` (a key ending in /), in the bucket's order."""
        found: list[str] = []
        async with self._client() as s3:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=folder)
            async for page in pages:
                found += [item["Key"] for item in page.get("Contents", [])]
                if len(found) > limit:
                    raise BucketError(f"{folder} holds more than {limit} objects")
        return [key for key in found if not key.endswith("/")]

    async def upload(self, source: Path, key: str) -> None:
        async with self._client() as s3:
            await s3.upload_file(str(source), self.name, key)


def _reason(error: ClientError, bucket: str) -> str:
    info = error.response.get("Error", {})
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = info.get("Code") or ""
    words = [word for word in (code if not code.isdigit() else "", info.get("Message")) if word]
    return f"the bucket {bucket} answered {status}: {' '.join(words) or 'no reason'}"
