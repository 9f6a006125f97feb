"""CVAT read JSON from catalog documents: adds the urls, which depend on the request's host."""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]


def with_user_url(user: Doc | None, base: str) -> Doc | None:
    if user is None:
        return None
    return {"url": f"{base}/api/users/{user['id']}", **user}


def user_json(doc: Doc, base: str) -> Doc:
    return {"url": f"{base}/api/users/{doc['id']}", **doc}


def project_json(doc: Doc, base: str) -> Doc:
    project_id = doc["id"]
    return {
        "url": f"{base}/api/projects/{project_id}",
        **doc,
        "owner": with_user_url(doc["owner"], base),
        "assignee": with_user_url(doc["assignee"], base),
        "tasks": {**doc["tasks"], "url": f"{base}/api/tasks?project_id={project_id}"},
        "labels": {"url": f"{base}/api/labels?project_id={project_id}"},
    }


def task_json(doc: Doc, base: str) -> Doc:
    task_id = doc["id"]
    return {
        "url": f"{base}/api/tasks/{task_id}",
        **doc,
        "owner": with_user_url(doc["owner"], base),
        "assignee": with_user_url(doc["assignee"], base),
        "jobs": {**doc["jobs"], "url": f"{base}/api/jobs?task_id={task_id}"},
        "labels": {"url": f"{base}/api/labels?task_id={task_id}"},
    }


def job_json(doc: Doc, base: str) -> Doc:
    job_id = doc["id"]
    return {
        "url": f"{base}/api/jobs/{job_id}",
        **doc,
        "assignee": with_user_url(doc["assignee"], base),
        "issues": {**doc["issues"], "url": f"{base}/api/issues?job_id={job_id}"},
        "labels": {"url": f"{base}/api/labels?job_id={job_id}"},
    }


def issue_json(doc: Doc, base: str) -> Doc:
    return {
        "url": f"{base}/api/issues/{doc['id']}",
        **doc,
        "owner": with_user_url(doc["owner"], base),
        "assignee": with_user_url(doc["assignee"], base),
        "comments": {**doc["comments"], "url": f"{base}/api/comments?issue_id={doc['id']}"},
    }


def comment_json(doc: Doc, base: str) -> Doc:
    return {
        "url": f"{base}/api/comments/{doc['id']}",
        **doc,
        "owner": with_user_url(doc["owner"], base),
    }


def label_json(doc: Doc, base: str) -> Doc:
    return doc
