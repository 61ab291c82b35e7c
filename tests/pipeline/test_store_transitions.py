"""The store's conditional writes allow exactly the transitions of `schema.TRANSITIONS`, on a real moto table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batch_jobs import schema
from batch_jobs.schema import ChunkItem, ResultRef, StepRecord
from batch_jobs.store import Conflict, Store
from devtools.drive import World

JOB = "job-1"


def _chunk(world: World, name: str, state: str, job_id: str | None = JOB) -> ChunkItem:
    steps = (StepRecord("timesplit", schema.DONE), StepRecord("probe", state, job_id=job_id))
    chunk = ChunkItem(name, 0, "k.mp4", 0.0, 1.0, 0, 25, steps)
    world.store.put_chunk(chunk)
    return chunk


# The store's writes that move step 1 of a chunk, by the state they lead to.
MOVES: dict[str, Callable[[Store, str], Any]] = {
    schema.RUNNING: lambda store, v: store.mark_running(v, 0, 1, 1, JOB),
    schema.DONE: lambda store, v: store.mark_done(v, 0, 1, JOB, ResultRef("b", "k"), {"frames": 25}),
    schema.FAILED: lambda store, v: store.mark_failed(v, 0, 1, "boom", job_id=JOB, attempt=1),
    schema.CANCELLED: lambda store, v: store.mark_cancelled(v, 0, 1),
    schema.SUBMITTED: lambda store, v: store.retry(store.get_chunk(v, 0)) or Conflict(None),
}


# Not a transition: the same job re-entering the step it left `running` (Batch retries it under the same job id).
REENTRY = (schema.RUNNING, schema.RUNNING)


def test_store_moves_match_the_transition_table(world: World) -> None:
    allowed = []
    for old in schema.STATES:
        for new in schema.STATES:
            video_id = f"v-{old}-{new}"
            _chunk(world, video_id, old)
            result = MOVES[new](world.store, video_id)
            after = world.store.get_chunk(video_id, 0).steps[1]
            expected = schema.can_transition(old, new) or (old, new) == REENTRY
            assert isinstance(result, Conflict) != expected, (old, new)
            assert after.state == (new if expected else old), (old, new)
            allowed += [(old, new)] * (not isinstance(result, Conflict))
    assert len(allowed) == sum(len(targets) for targets in schema.TRANSITIONS.values()) + 1


def test_only_the_recorded_job_re_enters_a_running_step(world: World) -> None:
    _chunk(world, "v-reentry", schema.RUNNING)
    assert isinstance(world.store.mark_running("v-reentry", 0, 1, 1, "another-job"), Conflict)
    assert isinstance(world.store.mark_running("v-reentry", 0, 1, 2, JOB), Conflict)  # not this attempt
    world.store.flag_cancelled("v-reentry", 0)
    assert isinstance(world.store.mark_running("v-reentry", 0, 1, 1, JOB), Conflict)
