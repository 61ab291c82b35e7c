"""Stream delivery is at-least-once and the router can die between any two calls: still one job per chunk-step."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pipeline_clips import make_clip

from batch_jobs import schema
from batch_jobs.submit import Submitted, submit_file
from cli.local.lambda_context import InvocationCrash
from devtools.drive import World
from router import handler
from router.handler import THREADS_ENV
from router.sweep import sweep


def _jobs_per_chunk_step(world: World, video_id: str) -> Counter[tuple[int, str, int]]:
    return Counter(
        (int(j["parameters"]["chunk"]), j["parameters"]["step"], int(j["parameters"]["attempt"]))
        for j in world.jobs()
        if j["parameters"]["video_id"] == video_id
    )


def _assert_complete(world: World, submitted: Submitted) -> None:
    chunks = world.store.chunks(submitted.video_id)
    assert len(chunks) == submitted.chunks
    assert all([s.state for s in c.steps] == [schema.DONE] * 3 for c in chunks)
    jobs = _jobs_per_chunk_step(world, submitted.video_id)
    expected = {(c, step, 1) for c in range(submitted.chunks) for step in ("probe", "summarize")} | {(0, "stitch", 1)}
    assert set(jobs) == expected and set(jobs.values()) == {1}, jobs
    assert world.store.get_video(submitted.video_id).state == schema.DONE


def test_every_record_replayed_100_times(world: World, clip: Path, tmp_path: Path) -> None:
    submitted = submit_file(world.stack, clip, tmp_path, chunk_seconds=5)
    for _ in range(40):  # during the walk: each batch arrives 100 times before the jobs run
        records = world.read_stream()
        for _ in range(100):
            world.deliver(records)
        fresh = [j for j in world.jobs() if j["jobId"] not in world.ran]
        for job in fresh:
            world.run_job(job)
        if not records and not fresh:
            break
    _assert_complete(world, submitted)
    history = list(world.delivered)
    assert len(history) >= 100 * 2 * 5
    for _ in range(100):  # after the walk: old records again, in order
        world.deliver(history[: len(history) // 100])
    world.pump()
    _assert_complete(world, submitted)


class CrashAfter:
    """botocore hook: let the n-th AWS call of the router succeed, then kill the invocation (once)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls, self.crashed = n, 0, False

    def __call__(self, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls == self.n and not self.crashed:
            self.crashed = True
            raise InvocationCrash(f"crash after AWS call {self.n}")


def _hook_router(hook: Callable[..., None]) -> Callable[[], None]:
    router = handler.get_router()
    clients = (router.store.client, router.batch.client)
    for client in clients:
        client.meta.events.register("after-call.*", hook)

    def unhook() -> None:
        for client in clients:
            client.meta.events.unregister("after-call.*", hook)

    return unhook


def test_crash_after_each_router_call_loses_no_chunk(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(THREADS_ENV, "1")  # records one after another: the n-th call is the same in every walk
    clip = tmp_path / "two-chunks.mp4"
    make_clip(clip, seconds=4)

    def walk(crash: CrashAfter, name: str) -> Submitted:
        submitted = submit_file(world.stack, clip, tmp_path / name, 2.0)
        unhook = _hook_router(crash)
        try:
            world.pump()
        finally:
            unhook()
        return submitted

    baseline = CrashAfter(0)
    _assert_complete(world, walk(baseline, "clean"))
    total = baseline.calls
    assert total >= 2 * 2 * 4  # 2 chunks x 2 steps x (claim, find, submit, record)
    for n in range(1, total + 1):
        crash = CrashAfter(n)
        submitted = walk(crash, f"crash{n}")
        assert crash.crashed, f"call {n} never happened"
        _assert_complete(world, submitted)


def test_the_sweep_and_a_resumed_claim_submitting_at_once_submit_one_job(
    world: World, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invocation dies right after its claims; the redelivered records resume them (ListJobs, then SubmitJob) and
    a sweep that counts the claims as stale runs between the two. The claims' lease sends the sweep away, and each
    chunk-step still gets one job."""
    monkeypatch.setenv(THREADS_ENV, "1")
    router, sweeps = handler.get_router(), []

    def sweep_between_listing_and_submitting(**_: Any) -> None:
        if not sweeps:  # once, and not inside the sweep's own calls
            sweeps.append(None)
            sweeps[0] = sweep(router, grace=timedelta(0))

    submitted = submit_file(world.stack, clip, tmp_path, chunk_seconds=60)  # one chunk (moto ends jobs at once,
    # and a sweep meeting one ended before it ran would fail it)
    unhook = _hook_router(CrashAfter(1))  # the first claim is written, then the invocation dies
    router.batch.client.meta.events.register("after-call.batch.ListJobs", sweep_between_listing_and_submitting)
    try:
        world.pump()
    finally:
        unhook()
        router.batch.client.meta.events.unregister("after-call.batch.ListJobs", sweep_between_listing_and_submitting)
    assert sweeps and sweeps[0] is not None and sweeps[0].chunks == 1
    _assert_complete(world, submitted)
