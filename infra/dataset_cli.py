"""`palimpsest export` and `palimpsest import`: datasets of a task, job or project, through
a running server's REST API (CVAT's request flow), with a progress bar on stderr.

They speak HTTP rather than open the database so that permissions, validation, the one
writer per server and the event attribution all apply exactly as for any client, and so
that they work against a remote server as well as a local one.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode

CHUNK = 8 << 20
POLL_SECONDS = 0.2
TARGETS = ("task", "job", "project")


class CliError(Exception):
    """A reason to stop, shown to the user as it is."""


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    export = commands.add_parser("export", help="export a task's, job's or project's dataset")
    _common(export)
    export.add_argument("-o", "--output", required=True, type=Path, help="the ZIP to write")
    export.add_argument("--with-images", action="store_true", help="include the images")
    imported = commands.add_parser(
        "import", help="import annotations into a task or job, or a dataset into a project"
    )
    _common(imported)
    imported.add_argument("file", type=Path, help="the annotation file or dataset ZIP")
    imported.add_argument(
        "--mode", choices=("replace", "append"), default="replace", help="task and job imports"
    )


def _common(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    for target in TARGETS:
        which.add_argument(f"--{target}", type=int, metavar="ID")
    parser.add_argument("--format", required=True, help='e.g. "CVAT for images 1.1"')
    parser.add_argument(
        "--server",
        default=os.environ.get("PALIMPSEST_SERVER") or _local_server(),
        help="the server's URL (default: PALIMPSEST_SERVER, else this machine's serve)",
    )
    parser.add_argument(
        "--auth",
        default=os.environ.get("PALIMPSEST_AUTH"),
        help="USER:PASSWORD (or PALIMPSEST_AUTH); else PALIMPSEST_ACCESS_TOKEN is used",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _local_server() -> str:
    host = os.environ.get("PALIMPSEST_HOST", "127.0.0.1")
    return f"http://{host}:{os.environ.get('PALIMPSEST_PORT', '8080')}"


def run(args: argparse.Namespace) -> int:
    try:
        client = Client(args.server.rstrip("/"), _authorization(args.auth))
        kind, ident = next((t, getattr(args, t)) for t in TARGETS if getattr(args, t) is not None)
        bar = ProgressBar(sys.stderr, quiet=args.quiet)
        if args.command == "export":
            export(client, kind, ident, args.format, args.output, args.with_images, bar)
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            import_file(client, kind, ident, args.format, args.file, args.mode, bar)
            print(f"imported {args.file} into {kind} {ident}", file=sys.stderr)
    except CliError as error:
        print(f"palimpsest {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


def _authorization(auth: str | None) -> str:
    if auth:
        user, sep, password = auth.partition(":")
        if not sep:
            raise CliError("--auth must be USER:PASSWORD")
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    token = os.environ.get("PALIMPSEST_ACCESS_TOKEN")
    if token:
        return f"Bearer {token}"
    raise CliError("give --auth USER:PASSWORD or set PALIMPSEST_ACCESS_TOKEN")


# The flows


def export(
    client: Client,
    kind: str,
    ident: int,
    format_name: str,
    output: Path,
    with_images: bool,
    bar: ProgressBar,
) -> None:
    query = {"format": format_name, "save_images": str(with_images).lower()}
    started = client.call("POST", f"/api/{kind}s/{ident}/dataset/export?{urlencode(query)}")
    finished = wait(client, started.json()["rq_id"], bar, "exporting")
    with client.open("GET", finished["result_url"]) as response:
        total = int(response.headers.get("Content-Length") or 0)
        partial = output.with_name(output.name + ".partial")
        with partial.open("wb") as out:
            done = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                done += len(chunk)
                bar.show("downloading", done / total if total else 0.0)
        partial.replace(output)
    bar.close()


def import_file(
    client: Client,
    kind: str,
    ident: int,
    format_name: str,
    source: Path,
    mode: str,
    bar: ProgressBar,
) -> None:
    if not source.is_file():
        raise CliError(f"{source} is not a file")
    subresource = "dataset" if kind == "project" else "annotations"
    path = f"/api/{kind}s/{ident}/{subresource}/"
    query = {"format": format_name, "filename": source.name}
    client.call("POST", f"{path}?{urlencode(query)}", headers={"Upload-Start": "true"})
    file_id = upload(client, path, source, bar)
    query = {"format": format_name, "filename": file_id}
    if kind != "project":
        query["import_mode"] = mode
    started = client.call("POST", f"{path}?{urlencode(query)}", headers={"Upload-Finish": "true"})
    wait(client, started.json()["rq_id"], bar, "importing")
    bar.close()


def upload(client: Client, path: str, source: Path, bar: ProgressBar) -> str:
    """Sends the file with TUS; returns the upload's id."""
    size = source.stat().st_size
    name = base64.b64encode(source.name.encode()).decode()
    created = client.call(
        "POST",
        path,
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(size),
            "Upload-Metadata": f"filename {name}",
        },
    )
    location = created.headers.get("Location")
    if not location:
        raise CliError("the server did not accept the upload (no Location)")
    offset = 0
    with source.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            client.call(
                "PATCH",
                location,
                body=chunk,
                headers={
                    "Tus-Resumable": "1.0.0",
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            offset += len(chunk)
            bar.show("uploading", offset / size if size else 1.0)
    return location.rstrip("/").rsplit("/", 1)[-1]


def wait(client: Client, rq_id: str, bar: ProgressBar, what: str) -> dict[str, Any]:
    """Polls the request until it is finished; CliError with its message if it failed."""
    while True:
        status = client.call("GET", f"/api/requests/{quote(rq_id, safe='')}").json()
        if status["status"] == "finished":
            bar.show(what, 1.0)
            return status
        if status["status"] == "failed":
            bar.close()
            raise CliError(f"{what} failed: {status['message']}")
        bar.show(what, status.get("progress") or 0.0, status.get("message") or "")
        time.sleep(POLL_SECONDS)


# HTTP


@dataclass
class Answer:
    status: int
    headers: Message  # case-insensitive
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    server: str
    authorization: str

    def call(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict | None = None
    ) -> Answer:
        with self.open(method, url, body=body, headers=headers) as response:
            return Answer(response.status, response.headers, response.read())

    @contextmanager
    def open(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict | None = None
    ) -> Iterator[IO[bytes]]:
        full = url if url.startswith(("http://", "https://")) else self.server + url
        request = urllib.request.Request(
            full,
            data=body if body is not None else (b"" if method in ("POST", "PATCH") else None),
            method=method,
            headers={"Authorization": self.authorization, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request) as response:
                yield response
        except urllib.error.HTTPError as error:
            raise CliError(f"{method} {full}: {error.code} {_reason(error)}") from None
        except urllib.error.URLError as error:
            raise CliError(f"cannot reach {self.server}: {error.reason}") from None


def _reason(error: urllib.error.HTTPError) -> str:
    text = error.read().decode(errors="replace")
    return text[:500] or str(error.reason)


# Progress


class ProgressBar:
    """One line on a terminal (or a line per phase elsewhere), rewritten as work goes on."""

    WIDTH = 30

    def __init__(self, stream: IO[str], *, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.phase = ""
        self.fraction = 0.0
        self.open = False

    def show(self, phase: str, fraction: float, message: str = "") -> None:
        if self.quiet:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(fraction * self.WIDTH)
        line = f"{phase:<12}[{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction:6.1%} {message}"
        if self.stream.isatty():
            self.stream.write("\r" + line[:120].ljust(120))
        elif phase != self.phase or (fraction == 1.0 and self.fraction < 1.0):
            self.stream.write(("\n" if self.open else "") + line)
        self.stream.flush()
        self.phase, self.fraction = phase, fraction
        self.open = True

    def close(self) -> None:
        if self.open and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
        self.open = False
