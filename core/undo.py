"""Per-user undo and redo of a job's annotation edits, written as new events.

Undo reverses the user's last step; redo re-applies the last undone one. A part of a step
whose object someone else changed since is refused (left as the other person made it), and
the reply says which; if every part is refused, nothing is written.
"""

from __future__ import annotations

from core.annotations import LabeledData, ObjectIds
from core.errors import DomainError
from core.job_annotations import annotatable_job
from core.jobs import Job
from core.permissions import Principal
from core.undo_book import Step
from core.units import Unit


class NothingToUndo(DomainError):
    """No step to undo or redo, or every part of it was changed by someone else since."""


def undo(unit: Unit, principal: Principal, job_id: int) -> dict[str, object]:
    return _move(unit, principal, job_id, forward=False)


def redo(unit: Unit, principal: Principal, job_id: int) -> dict[str, object]:
    return _move(unit, principal, job_id, forward=True)


def _move(unit: Unit, principal: Principal, job_id: int, *, forward: bool) -> dict[str, object]:
    """Undo (the last done step) or redo (the last undone one), as a new event."""
    job = annotatable_job(unit, principal, job_id)
    steps = job.undo_book.steps(principal.id)
    stack = steps.undone if forward else steps.done
    verb = "redo" if forward else "undo"
    if not stack:
        raise NothingToUndo(f"there is nothing of yours to {verb} in this job")
    step = stack[-1]
    remove, restore, refused = _reversal(job, principal.id, step, forward=forward)
    event = Job.EditRedone if forward else Job.EditUndone
    job.trigger_event(event, step=step.cid, remove=remove, restore=restore, refused=refused)
    return {"redone" if forward else "undone": step.cid, "refused": refused}


def _reversal(
    job: Job, user: int, step: Step, *, forward: bool
) -> tuple[ObjectIds, LabeledData, list[int]]:
    """What to remove and restore, leaving out objects someone else changed since."""
    if forward:
        remove_ids, restore_data = step.deleted, step.after
    else:
        remove_ids, restore_data = step.created, step.before
    touched = _ids(remove_ids) | {o.id for o in _objects(restore_data)}  # type: ignore[misc]
    refused = sorted(i for i in touched if _changed_by_someone_else(job, i, user, step))
    if touched and len(refused) == len(touched):
        raise NothingToUndo(
            f"others changed every object of this step since: {', '.join(map(str, refused))}"
        )
    skip = set(refused)
    state = job.annotations
    remove = ObjectIds(
        [i for i in remove_ids.tags if i not in skip and i in state.tags],
        [i for i in remove_ids.shapes if i not in skip and i in state.shapes],
        [i for i in remove_ids.tracks if i not in skip and i in state.tracks],
    )
    restore = LabeledData(
        tags=[t for t in restore_data.tags if t.id not in skip],
        shapes=[s for s in restore_data.shapes if s.id not in skip],
        tracks=[t for t in restore_data.tracks if t.id not in skip],
    )
    return remove, restore, refused


def _changed_by_someone_else(job: Job, ident: int, user: int, step: Step) -> bool:
    revision = job.annotations.revisions.get(ident)
    if revision is None:
        # Gone now. If the step did not delete it, someone else did.
        return ident not in _ids(step.deleted) and ident not in _ids(step.created)
    return revision.version > step.last_version and revision.actor != user


def _ids(ids: ObjectIds) -> set[int]:
    return {*ids.tags, *ids.shapes, *ids.tracks}


def _objects(data: LabeledData) -> list[object]:
    return [*data.tags, *data.shapes, *data.tracks]
