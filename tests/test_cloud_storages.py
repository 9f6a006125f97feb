"""Cloud storages against a real S3-speaking server (moto in server mode on a free port):
attaching, status, listing, tasks from bucket files with a manifest, exports into a bucket,
credentials kept sealed, bad and hostile input refused, the permission policy."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from cvat_sdk import make_client, models
from cvat_sdk.core.proxies.tasks import ResourceType
from moto.server import ThreadedMotoServer

from tests.conftest import register
from tests.images import write_images
from tests.live_server import ADMIN_PASSWORD, LiveServer, free_port
from tests.task_setup import wait_for_request
from tests.test_organizations import in_org, join
from tests.test_replay import palimpsest

KEY, SECRET = "AKIAPALIMPSEST000001", "very-secret-value-never-returned"
LABELS = [{"name": "car"}]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    yield f"http://127.0.0.1:{port}"
    moto.stop()


@pytest.fixture(scope="module")
def s3(s3_endpoint: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="frames")
    return client


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> list[str]:
    """Three images in the bucket under photos/, their manifest (in an order of its own),
    and a few other objects to list."""
    folder = tmp_path_factory.mktemp("bucket")
    names = ["b.png", "a.png", "c.png"]
    sizes = {}
    for index, name in enumerate(names):
        sizes[name] = (40 + index * 8, 30)
        [path] = write_images(folder, [name], size=sizes[name])
        s3.upload_file(str(path), "frames", f"photos/{name}", ExtraArgs={"ACL": "public-read"})
    manifest = [{"version": "1.1"}, {"type": "images"}] + [
        {"name": f"photos/{Path(n).stem}", "extension": ".png", "width": w, "height": h}
        for n, (w, h) in [(n, sizes[n]) for n in ["c.png", "a.png", "b.png"]]
    ]
    s3.put_object(
        Bucket="frames",
        ACL="public-read",
        Key="manifest.jsonl",
        Body="".join(json.dumps(line) + "\n" for line in manifest).encode(),
    )
    s3.put_object(Bucket="frames", Key="notes/readme.txt", Body=b"hello")
    return ["photos/c.png", "photos/a.png", "photos/b.png"]


def storage_body(endpoint: str, **fields: Any) -> dict[str, Any]:
    return {
        "provider_type": "AWS_S3_BUCKET",
        "resource": "frames",
        "display_name": "Frames",
        "credentials_type": "KEY_SECRET_KEY_PAIR",
        "key": KEY,
        "secret_key": SECRET,
        "specific_attributes": f"endpoint_url={endpoint}&region=us-east-1",
        "manifests": ["manifest.jsonl"],
        **fields,
    }


def attach(client: httpx.Client, endpoint: str, **fields: Any) -> dict[str, Any]:
    created = client.post("/api/cloudstorages", json=storage_body(endpoint, **fields))
    assert created.status_code == 201, created.text
    return created.json()


def test_attach_with_keys_keeps_the_credentials_sealed(
    server: LiveServer, admin: httpx.Client, s3_endpoint: str, images: list[str]
) -> None:
    storage = attach(admin, s3_endpoint, description="team bucket")
    assert storage["resource"] == "frames"
    assert storage["credentials_type"] == "KEY_SECRET_KEY_PAIR"
    assert storage["manifests"] == ["manifest.jsonl"]
    assert storage["owner"]["username"] == "admin"
    for answer in (
        json.dumps(storage),
        admin.get(f"/api/cloudstorages/{storage['id']}").text,
        admin.get("/api/cloudstorages").text,
    ):
        assert SECRET not in answer and KEY not in answer
    assert admin.get(f"/api/cloudstorages/{storage['id']}/status").json() == "AVAILABLE"

    assert server.runtime is not None
    with server.runtime.pool.connection() as conn:
        sealed = conn.execute(
            "SELECT sealed FROM cloud_storage_credentials WHERE cloud_storage_id = %s",
            (storage["id"],),
        ).fetchone()[0]
        logged = [bytes(r[0]).decode() for r in conn.execute("SELECT state FROM palimpsest_events")]
    assert SECRET.encode() not in bytes(sealed) and KEY.encode() not in bytes(sealed)
    assert any("frames" in state for state in logged)
    assert not any(SECRET in state or KEY in state for state in logged)


def test_anonymous_access_and_missing_buckets(
    admin: httpx.Client, s3_endpoint: str, s3: Any, images: list[str]
) -> None:
    anonymous = attach(
        admin, s3_endpoint, credentials_type="ANONYMOUS_ACCESS", key="", secret_key=""
    )
    assert admin.get(f"/api/cloudstorages/{anonymous['id']}/status").json() == "AVAILABLE"
    shown = admin.get(
        f"/api/cloudstorages/{anonymous['id']}/content-v2", params={"prefix": "photos"}
    ).json()["content"]
    assert sorted(entry["name"] for entry in shown) == ["a.png", "b.png", "c.png"]
    preview = admin.get(f"/api/cloudstorages/{anonymous['id']}/preview")
    assert preview.status_code == 200, preview.text
    s3.create_bucket(Bucket="short-lived")
    gone = attach(admin, s3_endpoint, resource="short-lived", manifests=[])
    s3.delete_bucket(Bucket="short-lived")
    assert admin.get(f"/api/cloudstorages/{gone['id']}/status").json() == "NOT_FOUND"


def test_only_reachable_buckets_holding_their_manifests_are_attached(
    admin: httpx.Client, s3_endpoint: str, images: list[str]
) -> None:
    before = admin.get("/api/cloudstorages").json()["count"]
    missing = admin.post(
        "/api/cloudstorages", json=storage_body(s3_endpoint, resource="no-such-bucket")
    )
    assert missing.status_code == 400 and "resource" in missing.json()
    no_manifest = admin.post(
        "/api/cloudstorages", json=storage_body(s3_endpoint, manifests=["absent.jsonl"])
    )
    assert no_manifest.status_code == 400 and "absent.jsonl" in no_manifest.text
    unreachable = admin.post(
        "/api/cloudstorages",
        json=storage_body(
            s3_endpoint, specific_attributes=f"endpoint_url=http://127.0.0.1:{free_port()}"
        ),
    )
    assert unreachable.status_code == 400 and "resource" in unreachable.json()
    assert admin.get("/api/cloudstorages").json()["count"] == before

    storage = attach(admin, s3_endpoint)
    url = f"/api/cloudstorages/{storage['id']}"
    for change, field in (
        ({"resource": "no-such-bucket"}, "resource"),
        ({"manifests": ["manifest.jsonl", "absent.jsonl"]}, "manifests"),
        ({"prefix": "../up/"}, "prefix"),
    ):
        refused = admin.patch(url, json=change)
        assert refused.status_code == 400 and field in refused.json(), refused.text
    assert admin.get(url).json() == storage


def test_a_bucket_that_refuses_the_key_is_forbidden(
    admin: httpx.Client, s3_endpoint: str, images: list[str]
) -> None:
    storage = attach(admin, s3_endpoint)
    # From now on the S3 server checks every signature against its (empty) IAM users.
    httpx.post(f"{s3_endpoint}/moto-api/reset-auth", content=b"0")
    try:
        status = admin.get(f"/api/cloudstorages/{storage['id']}/status")
    finally:
        httpx.post(f"{s3_endpoint}/moto-api/reset-auth", content=b"inf")
    assert status.status_code == 200, status.text
    assert status.json() == "FORBIDDEN"


def test_content_is_listed_by_folder_and_paged(
    admin: httpx.Client, s3_endpoint: str, images: list[str]
) -> None:
    storage = attach(admin, s3_endpoint)
    url = f"/api/cloudstorages/{storage['id']}/content-v2"
    top = admin.get(url).json()
    assert top["content"] == [
        {"name": "notes", "type": "DIR", "mime_type": "DIR"},
        {"name": "photos", "type": "DIR", "mime_type": "DIR"},
        {"name": "manifest.jsonl", "type": "REG", "mime_type": "unknown"},
    ]
    first = admin.get(url, params={"prefix": "photos/", "page_size": 2}).json()
    assert len(first["content"]) == 2 and first["next"]
    rest = admin.get(
        url, params={"prefix": "photos", "page_size": 2, "next_token": first["next"]}
    ).json()
    names = [entry["name"] for entry in first["content"] + rest["content"]]
    assert sorted(names) == ["a.png", "b.png", "c.png"] and rest["next"] is None
    from_manifest = admin.get(
        url, params={"manifest_path": "manifest.jsonl", "prefix": "photos/"}
    ).json()
    assert [entry["name"] for entry in from_manifest["content"]] == ["c.png", "a.png", "b.png"]
    # a storage's prefix narrows what it shows
    narrowed = attach(admin, s3_endpoint, prefix="photos/")
    shown = admin.get(f"/api/cloudstorages/{narrowed['id']}/content").json()["content"]
    assert sorted(entry["name"] for entry in shown) == ["a.png", "b.png", "c.png"]
    preview = admin.get(f"/api/cloudstorages/{storage['id']}/preview")
    assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"


def create_from_bucket(
    client: httpx.Client,
    storage_id: int,
    files: list[str],
    task: dict[str, Any] | None = None,
    **params: Any,
) -> tuple[int, dict[str, Any]]:
    created = client.post(
        "/api/tasks", json={"name": "from bucket", "labels": LABELS, **(task or {})}
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    body = {"image_quality": 70, "cloud_storage_id": storage_id, "server_files": files, **params}
    response = client.post(f"/api/tasks/{task_id}/data", json=body)
    assert response.status_code == 202, response.text
    return task_id, wait_for_request(client, response.json()["rq_id"])


def test_a_task_is_made_from_bucket_files_in_the_manifest_order(
    admin: httpx.Client, s3_endpoint: str, images: list[str]
) -> None:
    storage = attach(admin, s3_endpoint)
    files = ["manifest.jsonl", "photos/a.png", "photos/b.png", "photos/c.png"]
    task_id, status = create_from_bucket(
        admin, storage["id"], files, use_cache=True, sorting_method="predefined"
    )
    assert status["status"] == "finished", status
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert [frame["name"] for frame in meta["frames"]] == images
    assert [frame["width"] for frame in meta["frames"]] == [56, 48, 40]
    assert meta["storage"] == "cloud_storage" and meta["cloud_storage_id"] == storage["id"]
    assert admin.get(f"/api/tasks/{task_id}").json()["data_cloud_storage_id"] == storage["id"]
    frame = admin.get(
        f"/api/tasks/{task_id}/data", params={"type": "frame", "number": 0, "quality": "original"}
    )
    assert frame.status_code == 200 and frame.content[:4] == b"\x89PNG"


def test_a_folder_key_stands_for_the_files_under_it(
    admin: httpx.Client, s3_endpoint: str, images: list[str]
) -> None:
    storage = attach(admin, s3_endpoint)
    task_id, status = create_from_bucket(admin, storage["id"], ["photos/"])
    assert status["status"] == "finished", status
    meta = admin.get(f"/api/tasks/{task_id}/data/meta").json()
    assert [frame["name"] for frame in meta["frames"]] == sorted(images)


def test_cloud_data_with_cache_needs_a_manifest_that_matches(
    admin: httpx.Client, s3_endpoint: str, s3: Any, images: list[str]
) -> None:
    storage = attach(admin, s3_endpoint)
    created = admin.post("/api/tasks", json={"name": "no manifest", "labels": LABELS})
    task_id = created.json()["id"]
    refused = admin.post(
        f"/api/tasks/{task_id}/data",
        json={"cloud_storage_id": storage["id"], "server_files": images, "use_cache": True},
    )
    assert refused.status_code == 400 and "manifest" in refused.text
    s3.put_object(
        Bucket="frames",
        Key="wrong.jsonl",
        Body=b'{"version":"1.1"}\n{"type":"images"}\n'
        b'{"name":"photos/a","extension":".png","width":999,"height":30}\n',
    )
    _, status = create_from_bucket(
        admin, storage["id"], ["wrong.jsonl", "photos/a.png"], use_cache=True
    )
    assert status["status"] == "failed" and "999x30" in status["message"]


def test_exports_go_into_the_bucket(
    admin: httpx.Client, s3_endpoint: str, s3: Any, images: list[str]
) -> None:
    storage = attach(admin, s3_endpoint, prefix="exports/")
    task_id, status = create_from_bucket(admin, storage["id"], images)
    assert status["status"] == "finished", status
    started = admin.post(
        f"/api/tasks/{task_id}/dataset/export",
        params={
            "format": "CVAT for images 1.1",
            "location": "cloud_storage",
            "cloud_storage_id": storage["id"],
            "filename": "day1/annotations.zip",
        },
    )
    assert started.status_code == 202, started.text
    done = wait_for_request(admin, started.json()["rq_id"])
    assert done["status"] == "finished", done
    stored = s3.get_object(Bucket="frames", Key="exports/day1/annotations.zip")["Body"].read()
    assert "annotations.xml" in zipfile.ZipFile(io.BytesIO(stored)).namelist()

    # without a location, an export goes where the task's target storage says
    target = {"location": "cloud_storage", "cloud_storage_id": storage["id"]}
    task_id, _ = create_from_bucket(admin, storage["id"], images, {"target_storage": target})
    started = admin.post(
        f"/api/tasks/{task_id}/dataset/export", params={"format": "CVAT for images 1.1"}
    )
    assert wait_for_request(admin, started.json()["rq_id"])["status"] == "finished"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="frames", Prefix="exports/")["Contents"]]
    assert any(key.startswith(f"exports/task_{task_id}_annotations_") for key in keys)

    project = admin.post("/api/projects", json={"name": "to bucket", "labels": LABELS}).json()
    started = admin.post(
        f"/api/projects/{project['id']}/dataset/export",
        params={
            "format": "COCO 1.0",
            "location": "cloud_storage",
            "cloud_storage_id": storage["id"],
        },
    )
    assert started.status_code == 202, started.text
    assert wait_for_request(admin, started.json()["rq_id"])["status"] == "finished"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="frames", Prefix="exports/")["Contents"]]
    assert any(key.startswith(f"exports/project_{project['id']}_annotations_") for key in keys)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"provider_type": "DROPBOX"}, "provider_type"),
        ({"provider_type": "AZURE_CONTAINER"}, "provider_type"),
        ({"resource": "Not_A_Bucket!"}, "resource"),
        ({"resource": "a..b"}, "resource"),
        ({"display_name": ""}, "display_name"),
        ({"secret_key": ""}, "secret_key"),
        ({"credentials_type": "ANONYMOUS_ACCESS"}, "key"),
        ({"specific_attributes": "endpoint_url=ftp://x"}, "specific_attributes"),
        ({"specific_attributes": "colour=blue"}, "specific_attributes"),
        ({"manifests": ["../up.jsonl"]}, "manifests[0]"),
        ({"manifests": ["list.txt"]}, "manifests[0]"),
        ({"prefix": "../above/"}, "prefix"),
        ({"key": 5}, "key"),
    ],
)
def test_bad_storages_are_refused(
    admin: httpx.Client, s3_endpoint: str, change: dict[str, Any], field: str
) -> None:
    before = admin.get("/api/cloudstorages").json()["count"]
    refused = admin.post("/api/cloudstorages", json=storage_body(s3_endpoint, **change))
    assert refused.status_code == 400, refused.text
    assert field in refused.json(), refused.text
    assert admin.get("/api/cloudstorages").json()["count"] == before


def test_hostile_names_are_refused(
    admin: httpx.Client, s3_endpoint: str, s3: Any, images: list[str]
) -> None:
    storage = attach(admin, s3_endpoint)
    sid = storage["id"]
    created = admin.post("/api/tasks", json={"name": "hostile", "labels": LABELS}).json()
    for key in ("../etc/passwd", "/abs.png", "photos/../../x.png", "a\\b.png"):
        refused = admin.post(
            f"/api/tasks/{created['id']}/data",
            json={"cloud_storage_id": sid, "server_files": [key]},
        )
        assert refused.status_code == 400, (key, refused.text)
    assert admin.get(f"/api/tasks/{created['id']}").json()["data"] is None
    listing = admin.get(f"/api/cloudstorages/{sid}/content", params={"prefix": "../"})
    assert listing.status_code == 400
    export = admin.post(
        "/api/tasks/1/dataset/export",
        params={
            "format": "COCO 1.0",
            "location": "cloud_storage",
            "cloud_storage_id": sid,
            "filename": "../../out.zip",
        },
    )
    assert export.status_code in (400, 404)
    # a manifest in the bucket naming a file outside it fails the request, leaving no data
    s3.put_object(
        Bucket="frames",
        Key="evil.jsonl",
        Body=b'{"version":"1.1"}\n{"type":"images"}\n{"name":"../../x","extension":".png"}\n',
    )
    task_id, status = create_from_bucket(admin, sid, ["evil.jsonl", "photos/a.png"])
    assert status["status"] == "failed" and "not a usable file name" in status["message"]
    assert admin.get(f"/api/tasks/{task_id}").json()["data"] is None


def test_owners_manage_members_use_others_do_not_see(
    server: LiveServer, admin: httpx.Client, s3_endpoint: str, images: list[str]
) -> None:
    owner = register(server, "cs-owner")
    worker = register(server, "cs-worker")
    stranger = register(server, "cs-stranger")
    mine = attach(owner, s3_endpoint)
    assert stranger.get(f"/api/cloudstorages/{mine['id']}").status_code == 404
    assert stranger.patch(f"/api/cloudstorages/{mine['id']}", json={}).status_code == 404
    assert stranger.get("/api/cloudstorages").json()["count"] == 0

    assert owner.post("/api/organizations", json={"slug": "clouds"}).status_code == 201
    join(owner, worker, "clouds", "worker")
    shared = owner.post(
        "/api/cloudstorages", json=storage_body(s3_endpoint), headers=in_org("clouds")
    ).json()
    assert shared["organization"] is not None
    assert worker.get(f"/api/cloudstorages/{shared['id']}").status_code == 200
    assert worker.get(f"/api/cloudstorages/{shared['id']}/status").json() == "AVAILABLE"
    assert [s["id"] for s in worker.get("/api/cloudstorages").json()["results"]] == [shared["id"]]
    assert worker.get(f"/api/cloudstorages/{mine['id']}").status_code == 404
    assert (
        worker.patch(f"/api/cloudstorages/{shared['id']}", json={"display_name": "x"}).status_code
        == 403
    )
    assert worker.delete(f"/api/cloudstorages/{shared['id']}").status_code == 403
    assert (
        worker.post(
            "/api/cloudstorages", json=storage_body(s3_endpoint), headers=in_org("clouds")
        ).status_code
        == 403
    )

    maintainer = register(server, "cs-maintainer")
    join(owner, maintainer, "clouds", "maintainer")
    described = maintainer.patch(
        f"/api/cloudstorages/{shared['id']}", json={"description": "kept by maintainers"}
    )
    assert described.status_code == 200, described.text

    renamed = owner.patch(
        f"/api/cloudstorages/{shared['id']}",
        json={"display_name": "Renamed", "key": "AKIAOTHER", "secret_key": "other-secret"},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["display_name"] == "Renamed" and "other-secret" not in renamed.text
    assert owner.delete(f"/api/cloudstorages/{shared['id']}").status_code == 204
    assert owner.get(f"/api/cloudstorages/{shared['id']}").status_code == 404


def test_cvat_sdk_attaches_a_bucket_and_makes_a_task_from_it(
    server: LiveServer, s3_endpoint: str, images: list[str]
) -> None:
    with make_client(
        "http://127.0.0.1", port=server.port, credentials=("admin", ADMIN_PASSWORD)
    ) as client:
        api = client.api_client.cloudstorages_api
        storage, _ = api.create(
            models.CloudStorageWriteRequest(
                provider_type=models.ProviderTypeEnum("AWS_S3_BUCKET"),
                resource="frames",
                display_name="from the sdk",
                credentials_type=models.CredentialsTypeEnum("KEY_SECRET_KEY_PAIR"),
                key=KEY,
                secret_key=SECRET,
                specific_attributes=f"endpoint_url={s3_endpoint}",
                manifests=["manifest.jsonl"],
            )
        )
        status, _ = api.retrieve_status(storage.id)
        assert status == "AVAILABLE"
        content, _ = api.retrieve_content_v2(storage.id, prefix="photos/")
        assert sorted(entry.name for entry in content.content) == ["a.png", "b.png", "c.png"]
        task = client.tasks.create_from_data(
            spec=models.TaskWriteRequest(name="sdk from bucket", labels=LABELS),
            resource_type=ResourceType.SHARE,
            resources=["manifest.jsonl", *images],
            data_params={
                "cloud_storage_id": storage.id,
                "use_cache": True,
                "sorting_method": "predefined",
            },
        )
        assert [frame.name for frame in task.get_meta().frames] == images


def test_credentials_sealed_under_another_key_are_asked_for_again(
    server: LiveServer, admin: httpx.Client, s3_endpoint: str, images: list[str]
) -> None:
    storage = attach(admin, s3_endpoint)
    assert server.runtime is not None
    with server.runtime.pool.connection() as conn:
        conn.execute(
            "UPDATE cloud_storage_credentials SET sealed = %s WHERE cloud_storage_id = %s",
            (Fernet(Fernet.generate_key()).encrypt(b"{}"), storage["id"]),
        )
    refused = admin.get(f"/api/cloudstorages/{storage['id']}/status")
    assert refused.status_code == 400 and "PALIMPSEST_SECRET_KEY" in refused.text
    half = admin.patch(f"/api/cloudstorages/{storage['id']}", json={"key": KEY})
    assert half.status_code == 400 and "secret_key" in half.json()
    fixed = admin.patch(
        f"/api/cloudstorages/{storage['id']}", json={"key": KEY, "secret_key": SECRET}
    )
    assert fixed.status_code == 200, fixed.text
    assert admin.get(f"/api/cloudstorages/{storage['id']}/status").json() == "AVAILABLE"


def test_replay_rebuilds_the_cloud_storages(
    server: LiveServer,
    admin: httpx.Client,
    s3_endpoint: str,
    images: list[str],
    nats_url: str,
    tmp_path: Path,
) -> None:
    kept = attach(admin, s3_endpoint, display_name="kept")
    admin.patch(f"/api/cloudstorages/{kept['id']}", json={"description": "after a change"})
    dropped = attach(admin, s3_endpoint, display_name="dropped")
    admin.delete(f"/api/cloudstorages/{dropped['id']}")

    def rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(server.database_url, autocommit=True) as conn:
            return conn.execute("SELECT * FROM catalog_cloud_storages ORDER BY id").fetchall()

    before = rows()
    assert any(row[2]["description"] == "after a change" for row in before)
    with psycopg.connect(server.database_url, autocommit=True) as conn:
        conn.execute('UPDATE catalog_cloud_storages SET doc = doc || \'{"resource": "x"}\'')
    done = palimpsest(server, nats_url, tmp_path, "replay", "--projection", "catalog")
    assert done.returncode == 0, done.stderr
    assert rows() == before
