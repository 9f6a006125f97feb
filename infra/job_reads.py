"""Reading a job's annotations: now (from the committed view), or at any past version/time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from psycopg_pool import ConnectionPool

from core.annotations import AnnotationState
from core.errors import NotFound
from core.jobs import Job
from infra.store import Palimpsest
from infra.warm import CommittedViews, View


class JobReader:
    def __init__(self, app: Palimpsest, pool: ConnectionPool, views: CommittedViews) -> None:
        self._app = app
        self._pool = pool
        self._views = views

    def current(self, job_id: int) -> tuple[int, AnnotationState]:
        """The latest committed annotations (checks the log, so other processes' writes show)."""
        version, state = self.current_state(job_id)
        return version, state["annotations"]

    def current_state(self, job_id: int) -> tuple[int, dict[str, Any]]:
        """The latest committed job: its version and its attributes (do not change them)."""
        stream = Job.stream_id(job_id)
        latest = self.latest_version(job_id)
        view = self._views.get(stream)
        if view is None or view.version != latest:
            job = self._load(job_id)
            view = View(job.version, dict(vars(job)))
            self._views.offer(stream, view)
        if view.state.get("deleted"):
            raise NotFound("job", job_id)
        return view.version, view.state

    def at_version(self, job_id: int, version: int) -> AnnotationState:
        latest = self.latest_version(job_id)
        if not 1 <= version <= latest:
            raise NotFound(f"version of job {job_id}", version)
        return self._load(job_id, version).annotations

    def version_at(self, job_id: int, moment: datetime) -> int:
        """The job's version after the last event recorded at or before `moment`."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT max(version) FROM job_history WHERE stream = %s AND recorded_at <= %s",
                (Job.stream_id(job_id), moment),
            ).fetchone()
        if row is None or row[0] is None:
            raise NotFound(f"job {job_id} at", moment.isoformat())
        return int(row[0])

    def latest_version(self, job_id: int) -> int:
        table = self._app.recorder.events_table_name  # type: ignore[attr-defined]
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT max(originator_version) FROM {table} WHERE originator_id = %s",
                (Job.stream_id(job_id),),
            ).fetchone()
        if row is None or row[0] is None:
            raise NotFound("job", job_id)
        return int(row[0])

    def _load(self, job_id: int, version: int | None = None) -> Job:
        try:
            job = self._app.repository.get(Job.stream_id(job_id), version=version)
        except AggregateNotFoundError:
            raise NotFound("job", job_id) from None
        if not isinstance(job, Job):
            raise NotFound("job", job_id)
        return job
