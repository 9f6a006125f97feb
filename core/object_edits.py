"""Edits of single objects that name the revision the editor saw: merge or refuse, never
overwrite silently.

Two people who change different fields of one object both keep their change; a change to a
field someone else changed after the editor's revision is a clash, answered with the object
as it is now so the editor can redo the edit on top of it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from core.annotations import LabeledData, ObjectIds, Shape, Tag, Track
from core.errors import Conflict, NotFound, ValidationFailed
from core.job_annotations import annotatable_job, rules_for
from core.jobs import Job
from core.permissions import Principal
from core.units import Unit

Kind = Literal["tag", "shape", "track"]
KIND_TYPES: dict[str, type[msgspec.Struct]] = {"tag": Tag, "shape": Shape, "track": Track}
FIXED_FIELDS = frozenset({"id"})


class EditConflict(Conflict):
    """A field the edit changes was changed by someone else after the editor's revision."""

    def __init__(self, kind: str, current: msgspec.Struct, fields: list[str], version: int):
        super().__init__(f"{', '.join(fields)} of {kind} {current.id} changed since")  # type: ignore[attr-defined]
        self.kind = kind
        self.current = current
        self.fields = fields
        self.version = version


def _held(job: Job, kind: str, ident: int) -> msgspec.Struct:
    held: dict[int, Any] = getattr(job.annotations, f"{kind}s")
    if ident not in held:
        raise NotFound(kind, ident)
    return held[ident]


def edit_object(
    unit: Unit,
    principal: Principal,
    job_id: int,
    kind: Kind,
    ident: int,
    base: int,
    changes: dict[str, Any],
) -> msgspec.Struct:
    """Changes some fields of one object, as of revision `base` of the job."""
    job = annotatable_job(unit, principal, job_id)
    if kind not in KIND_TYPES:
        raise ValidationFailed.one("kind", f"{kind!r} is not one of tag, shape, track")
    current = _held(job, kind, ident)
    unknown = sorted(set(changes) - set(current.__struct_fields__) | (set(changes) & FIXED_FIELDS))
    if unknown:
        raise ValidationFailed.one("changes", f"cannot change {', '.join(unknown)}")
    revision = job.annotations.revisions[ident]
    clashes = sorted(
        field
        for field, value in changes.items()
        if revision.of(field) > base and msgspec.to_builtins(getattr(current, field)) != value
    )
    if clashes:
        raise EditConflict(kind, current, clashes, job.version)
    merged = {**msgspec.to_builtins(current), **changes}
    try:
        edited = msgspec.convert(merged, KIND_TYPES[kind])
    except msgspec.ValidationError as error:
        raise ValidationFailed.one("changes", str(error)) from None
    checked = rules_for(unit, job).check(LabeledData(**{f"{kind}s": [edited]}))
    edited = getattr(checked, f"{kind}s")[0]
    if edited != current:
        job.trigger_event(Job.AnnotationsUpdated, data=LabeledData(**{f"{kind}s": [edited]}))
    return edited


def delete_objects(
    unit: Unit,
    principal: Principal,
    job_id: int,
    objects: list[tuple[Kind, int, int | None]],
) -> ObjectIds:
    """Deletes objects; one edited after the base revision its deleter saw is a clash."""
    job = annotatable_job(unit, principal, job_id)
    ids: dict[str, list[int]] = {"tag": [], "shape": [], "track": []}
    for kind, ident, base in objects:
        current = _held(job, kind, ident)
        revision = job.annotations.revisions[ident]
        if base is not None and revision.version > base:
            raise EditConflict(kind, current, ["*"], job.version)
        ids[kind].append(ident)
    doomed = ObjectIds(ids["tag"], ids["shape"], ids["track"])
    if doomed.count():
        job.trigger_event(Job.AnnotationsDeleted, ids=doomed)
    return doomed
