"""A job's review state: the issues pinned to its frames, and who wrote each comment.

Issues and comments live on their job's stream (see core/issues.py for the commands), so they
reach the job's room, its history and its time travel like any other edit of the job.
"""

from __future__ import annotations

import msgspec


class Issue(msgspec.Struct, frozen=True):
    id: int
    frame: int
    position: list[float]
    owner_id: int | None
    assignee_id: int | None = None
    resolved: bool = False


class CommentRef(msgspec.Struct, frozen=True):
    issue_id: int
    owner_id: int | None


class ReviewState(msgspec.Struct, frozen=True):
    """A job's issues and who wrote each comment (messages live in the events and catalog)."""

    issues: dict[int, Issue] = {}
    comments: dict[int, CommentRef] = {}

    def with_issue(self, issue: Issue) -> ReviewState:
        return ReviewState({**self.issues, issue.id: issue}, self.comments)

    def without_issue(self, issue_id: int) -> ReviewState:
        issues = {i: issue for i, issue in self.issues.items() if i != issue_id}
        comments = {c: ref for c, ref in self.comments.items() if ref.issue_id != issue_id}
        return ReviewState(issues, comments)

    def with_comment(self, comment_id: int, ref: CommentRef) -> ReviewState:
        return ReviewState(self.issues, {**self.comments, comment_id: ref})

    def without_comment(self, comment_id: int) -> ReviewState:
        return ReviewState(
            self.issues, {c: ref for c, ref in self.comments.items() if c != comment_id}
        )

    def open_issues(self) -> int:
        return sum(1 for issue in self.issues.values() if not issue.resolved)
