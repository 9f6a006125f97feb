"""`palimpsest replay` rebuilds the read models from the log to what they were."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg

from tests.live_server import LiveServer

PALIMPSEST = str(Path(sys.executable).parent / "palimpsest")
TABLES = ("catalog_users", "catalog_projects", "catalog_tasks", "catalog_labels", "job_history")


def snapshot(database_url: str) -> dict[str, list[str]]:
    with psycopg.connect(database_url) as conn:
        return {
            table: sorted(str(row) for row in conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in TABLES
        }


def test_replay_rebuilds_identical_read_models(
    server: LiveServer, admin: httpx.Client, nats_url: str, tmp_path: Path
) -> None:
    project = admin.post("/api/projects", json={"name": "p", "labels": [{"name": "a"}]}).json()
    admin.post("/api/tasks", json={"name": "t", "project_id": project["id"]})
    admin.patch(f"/api/projects/{project['id']}", json={"name": "renamed"})
    before = snapshot(server.database_url)
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        conn.execute('UPDATE catalog_projects SET doc = doc || \'{"name": "corrupted"}\'')
    env = {
        **os.environ,
        "PALIMPSEST_DATABASE_URL": server.database_url,
        "PALIMPSEST_NATS_URL": nats_url,
        "PALIMPSEST_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [PALIMPSEST, "replay"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "catalog rebuilt" in done.stdout and "history rebuilt" in done.stdout
    assert snapshot(server.database_url) == before
