"""/ws/jobs/{id}: the websocket of a job room, behind the same sign-in and permissions."""

from __future__ import annotations

import asyncio

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from core.errors import DomainError, NotFound
from core.permissions import Action, Resource, authorize
from projections.visibility import resource_of
from realtime.rooms import Connection
from realtime.session import RoomSession

log = structlog.get_logger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
MAX_FRAMES_PER_MESSAGE = 256


async def job_room(websocket: WebSocket) -> None:
    credentials = websocket.scope.get("state", {}).get("credentials")
    if credentials is None:
        await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="sign in first")
        return
    job_id = int(websocket.path_params["id"])
    runtime = websocket.app.state.runtime
    resource = await run_in_threadpool(_job_resource, runtime, job_id)
    try:
        if resource is None:
            raise NotFound("job", job_id)
        principal = authorize(credentials.principal, Action.VIEW, resource)
    except NotFound:
        await websocket.close(code=CLOSE_NOT_FOUND, reason=f"job {job_id} was not found")
        return
    except DomainError as error:
        await websocket.close(code=CLOSE_FORBIDDEN, reason=str(error)[:120])
        return
    await websocket.accept()
    hub = websocket.app.state.hub
    connection = Connection(principal=principal, job_id=job_id)
    session = RoomSession(runtime, hub, websocket.app.state.jobs, connection)
    sender = asyncio.create_task(_send_all(websocket, connection))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text") or message.get("bytes") or b""
            await session.receive(raw)
    except WebSocketDisconnect:
        pass
    finally:
        hub.leave(connection)
        connection.close()
        await asyncio.gather(sender, return_exceptions=True)


async def _send_all(websocket: WebSocket, connection: Connection) -> None:
    """Sends what is queued; several waiting frames go out as one message, a JSON array."""
    while True:
        frames = [await connection.outbox.get()]
        while len(frames) < MAX_FRAMES_PER_MESSAGE and not connection.outbox.empty():
            frames.append(connection.outbox.get_nowait())
        closing = None in frames
        frames = [frame for frame in frames if frame is not None]
        if frames:
            message = frames[0] if len(frames) == 1 else b"[" + b",".join(frames) + b"]"
            try:
                await websocket.send(
                    {"type": "websocket.send", "bytes": None, "text": message.decode()}
                )
            except (WebSocketDisconnect, RuntimeError):
                break
        if closing:
            break
    try:
        await websocket.close()
    except RuntimeError:
        pass


def _job_resource(runtime: object, job_id: int) -> Resource | None:
    with runtime.pool.connection() as conn:  # type: ignore[attr-defined]
        return resource_of(conn.cursor(), "job", job_id)


ROUTES = [WebSocketRoute("/ws/jobs/{id:int}", job_room)]
