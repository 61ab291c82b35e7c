"""Planted bugs: a safeguard patched out on purpose, to show that some seed makes its invariant fail (the checker's
own test, the way mutation testing keeps a suite honest). Each is a context manager; its name says what is removed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

from batch_jobs import control, layout, schema
from batch_jobs.batch import BatchClient
from batch_jobs.control import Waiting
from batch_jobs.pipeline import Pipeline
from batch_jobs.schema import ResultRef, VideoItem
from batch_jobs.store import Lease, Store, serialize
from router import sweep


@contextmanager
def _patched(*patches: tuple[Any, str, Any]) -> Iterator[None]:
    with ExitStack() as stack:
        for owner, name, value in patches:
            original = getattr(owner, name)
            setattr(owner, name, value)
            stack.callback(setattr, owner, name, original)
        yield


def result_key_per_step() -> AbstractContextManager[None]:
    """Results go to one key per chunk-step, not per attempt, and `done` is recorded for any job: a stale job's
    object replaces the recorded one. (one_result_per_chunk_step)"""

    def any_job_done(
        self: Store, video_id: str, index: int | None, pos: int, job_id: str, result: ResultRef, metrics: Any
    ) -> Any:
        p = f"steps[{pos}]"
        values = {":done": schema.DONE, ":result": {"bucket": result.bucket, "key": result.key}, ":job": job_id}
        return self._update(
            schema.steps_key(video_id, index),
            f"SET {p}.#state = :done, {p}.#result = :result, {p}.job_id = :job",
            "attribute_exists(pk)",
            values,
        )

    def per_step(video_id: str, step: str, index: int, attempt: int) -> str:
        return f"videos/{video_id}/results/{step}/{index:05d}.json"

    return _patched((layout, "result_key", per_step), (Store, "mark_done", any_job_done))


def no_lost_count_repair() -> AbstractContextManager[None]:
    """The sweep no longer counts finished chunks whose final record was lost. (no_video_stuck)"""
    return _patched((sweep, "outcome", lambda *args, **kwargs: None))


def no_failure_reason() -> AbstractContextManager[None]:
    """A failed step records a blank reason. (failures_have_reasons)"""
    original = Store.mark_failed

    def mark(self: Store, video_id: str, index: int | None, pos: int, reason: str, *args: Any, **kwargs: Any) -> Any:
        return original(self, video_id, index, pos, " ", *args, **kwargs)

    return _patched((Store, "mark_failed", mark))


def no_lease_nor_duplicate_terminate() -> AbstractContextManager[None]:
    """Submitters ignore the submit lease, so the stream and a sweep can both submit one claim, and the router leaves
    running a job it could not record (a duplicate, or one whose step moved on). With the lease alone, duplicates
    need a crash right after SubmitJob while ListJobs lags: too rare for a short run to show. (no_orphan_jobs)"""
    original = BatchClient.terminate

    def terminate(self: BatchClient, job_id: str, reason: str) -> None:
        if reason.startswith("cancelled"):
            original(self, job_id, reason)

    return _patched(
        (BatchClient, "terminate", terminate),
        (Lease, "held_by_another", lambda self, step: False),
        (Store, "lease_submit", lambda self, *_: True),
    )


def no_conditional_video_create() -> AbstractContextManager[None]:
    """A submit takes its video id without checking that it is free. (no_foreign_overwrite)"""

    def put_anyway(self: Store, video: VideoItem) -> bool:
        self.client.put_item(TableName=self.table, Item=serialize(video.to_item()))
        return True

    return _patched((Store, "put_video_once", put_anyway))


def settle_only_running() -> AbstractContextManager[None]:
    """A failed video is never settled again, as before the fix: a retry interrupted between its two writes (or one
    racing the router's count) leaves it failed while its chunks end done. (retry_recovers)"""
    original = control.settle

    def settle(store: Store, video: VideoItem, pipeline: Pipeline, lease: Lease | None = None) -> Waiting | None:
        return original(store, video, pipeline, lease) if video.state == schema.RUNNING else None

    return _patched((control, "settle", settle))


PLANTS: dict[str, tuple[str, Callable[[], AbstractContextManager[None]]]] = {
    "result_key_per_step": ("one_result_per_chunk_step", result_key_per_step),
    "no_lost_count_repair": ("no_video_stuck", no_lost_count_repair),
    "no_failure_reason": ("failures_have_reasons", no_failure_reason),
    "no_lease_nor_duplicate_terminate": ("no_orphan_jobs", no_lease_nor_duplicate_terminate),
    "no_conditional_video_create": ("no_foreign_overwrite", no_conditional_video_create),
    "settle_only_running": ("retry_recovers", settle_only_running),
}
