"""Where a project's or task's data is imported from and exported to."""

from __future__ import annotations

from typing import Literal

import msgspec

from core.units import Unit


class StorageInput(msgspec.Struct):
    location: Literal["local", "cloud_storage"] = "local"
    cloud_storage_id: int | None = None


class StorageSpec(msgspec.Struct):
    id: int
    location: str
    cloud_storage_id: int | None = None


def build_storage(unit: Unit, given: StorageInput | None) -> StorageSpec:
    given = given or StorageInput()
    return StorageSpec(
        id=unit.next_id("storage"),
        location=given.location,
        cloud_storage_id=given.cloud_storage_id,
    )


def apply_changes(target: object, changes: dict[str, object]) -> None:
    """Sets the fields of an `Updated` event; storage fields travel as plain dicts."""
    for field, value in changes.items():
        if field.endswith("_storage") and value is not None:
            value = msgspec.convert(value, StorageSpec)
        setattr(target, field, value)
