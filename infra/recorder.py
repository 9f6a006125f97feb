"""The events recorder, able to write read models in the transaction that records events.

A save may pass ``in_transaction=work``: the events are inserted, then ``work(cursor,
notifications)`` runs in the same transaction, so a read model written there is exactly as
durable as the events and no later (one commit, not one per read model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

InTransaction = Callable[[psycopg.Cursor[Any], list[Notification]], None]


class TransactionalRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The events go as one binary parameter (%b): as text (%s) psycopg hex-encodes each
        # state and escapes it twice in Python (composite, then array), and PostgreSQL parses
        # it all back; for a 14 MB import that was 0.5 s of the writer's CPU and 2-3 s of the
        # commit, binary 0.02 s and 0.5 s.
        invoke = SQL("SELECT * FROM {schema}.{insert}((%b))")
        self.sql_invoke_pg_function_insert_events = invoke.format(
            schema=Identifier(self.datastore.schema),
            insert=Identifier(self.pg_function_name_insert_events),
        )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        work: InTransaction | None = kwargs.pop("in_transaction", None)
        if work is None or not stored_events:
            return super().insert_events(stored_events, **kwargs)
        assert self.datastore.enable_db_functions, "needs POSTGRES_ENABLE_DB_FUNCTIONS"
        rows = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        with self.datastore.get_connection() as conn, conn.transaction():
            with conn.cursor() as curs:
                curs.execute(self.sql_invoke_pg_function_insert_events, (rows,), prepare=True)
                ids = [row[self.pg_function_name_insert_events] for row in curs.fetchall()]
            notifications = [
                Notification(
                    id=notification_id,
                    originator_id=event.originator_id,
                    originator_version=event.originator_version,
                    topic=event.topic,
                    state=event.state,
                )
                for notification_id, event in zip(ids, stored_events, strict=True)
            ]
            with conn.cursor(row_factory=tuple_row) as curs:
                work(curs, notifications)
        return ids
