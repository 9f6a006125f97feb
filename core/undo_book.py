"""Per-user undo and redo stacks of a job, kept in the job's state (so rebuilt from the log).

Each user command that changed annotations becomes a step holding the objects as they were
before it and after it; undo restores `before`, redo restores `after`. Steps share the
immutable objects, so keeping them costs references, not copies.
"""

from __future__ import annotations

import msgspec

from core.annotations import AnnotationState, LabeledData, ObjectIds

MAX_STEPS = 100


class Step(msgspec.Struct, frozen=True):
    cid: str
    first_version: int
    last_version: int
    before: LabeledData  # objects as they were (for updated and deleted ones)
    after: LabeledData  # objects as the command left them (created and updated ones)
    created: ObjectIds  # objects the command made (undo removes them)
    deleted: ObjectIds  # objects the command removed (redo removes them again)


class UserSteps(msgspec.Struct, frozen=True):
    done: list[Step] = []
    undone: list[Step] = []


class UndoBook(msgspec.Struct, frozen=True):
    users: dict[int, UserSteps] = {}

    def steps(self, user: int) -> UserSteps:
        return self.users.get(user, UserSteps())

    def with_steps(self, user: int, steps: UserSteps) -> UndoBook:
        return UndoBook({**self.users, user: steps})


def record_change(
    book: UndoBook,
    state: AnnotationState,
    *,
    actor: int | None,
    cid: str | None,
    version: int,
    written: LabeledData | None = None,
    removed: ObjectIds | None = None,
) -> UndoBook:
    """Adds what an event did to its actor's latest step (same command) or a new step."""
    if actor is None or cid is None:
        return book
    before = _objects(state, removed) if removed is not None else _previous(state, written)
    created = _new_ids(state, written) if written is not None else ObjectIds()
    step = Step(
        cid=cid,
        first_version=version,
        last_version=version,
        before=before,
        after=written or LabeledData(),
        created=created,
        deleted=removed or ObjectIds(),
    )
    steps = book.steps(actor)
    if steps.done and steps.done[-1].cid == cid:
        step = _merge(steps.done[-1], step)
        done = [*steps.done[:-1], step]
    else:
        done = [*steps.done, step][-MAX_STEPS:]
    return book.with_steps(actor, UserSteps(done=done, undone=[]))


def move_step(book: UndoBook, actor: int, *, undoing: bool) -> UndoBook:
    steps = book.steps(actor)
    if undoing:
        return book.with_steps(actor, UserSteps(steps.done[:-1], [*steps.undone, steps.done[-1]]))
    return book.with_steps(actor, UserSteps([*steps.done, steps.undone[-1]], steps.undone[:-1]))


def _objects(state: AnnotationState, ids: ObjectIds) -> LabeledData:
    return LabeledData(
        tags=[state.tags[i] for i in ids.tags if i in state.tags],
        shapes=[state.shapes[i] for i in ids.shapes if i in state.shapes],
        tracks=[state.tracks[i] for i in ids.tracks if i in state.tracks],
    )


def _previous(state: AnnotationState, written: LabeledData | None) -> LabeledData:
    if written is None:
        return LabeledData()
    return LabeledData(
        tags=[state.tags[t.id] for t in written.tags if t.id in state.tags],
        shapes=[state.shapes[s.id] for s in written.shapes if s.id in state.shapes],
        tracks=[state.tracks[t.id] for t in written.tracks if t.id in state.tracks],
    )


def _new_ids(state: AnnotationState, written: LabeledData) -> ObjectIds:
    return ObjectIds(
        [t.id for t in written.tags if t.id not in state.tags],  # type: ignore[misc]
        [s.id for s in written.shapes if s.id not in state.shapes],  # type: ignore[misc]
        [t.id for t in written.tracks if t.id not in state.tracks],  # type: ignore[misc]
    )


def _merge(first: Step, later: Step) -> Step:
    """One command, several events: the earliest `before` and the latest `after` win."""
    known_before = set(_all_ids(first.before)) | set(_all_ids(first.after))
    return Step(
        cid=first.cid,
        first_version=first.first_version,
        last_version=later.last_version,
        before=_union(first.before, later.before, skip=known_before),
        after=_union(later.after, first.after, skip=set(_all_ids(later.after))),
        created=_join(first.created, later.created),
        deleted=_join(first.deleted, later.deleted),
    )


def _all_ids(data: LabeledData) -> list[int]:
    return [o.id for kind in (data.tags, data.shapes, data.tracks) for o in kind]  # type: ignore[misc]


def _union(primary: LabeledData, extra: LabeledData, *, skip: set[int]) -> LabeledData:
    return LabeledData(
        tags=[*primary.tags, *(t for t in extra.tags if t.id not in skip)],
        shapes=[*primary.shapes, *(s for s in extra.shapes if s.id not in skip)],
        tracks=[*primary.tracks, *(t for t in extra.tracks if t.id not in skip)],
    )


def _join(first: ObjectIds, later: ObjectIds) -> ObjectIds:
    return ObjectIds(
        [*first.tags, *later.tags], [*first.shapes, *later.shapes], [*first.tracks, *later.tracks]
    )
