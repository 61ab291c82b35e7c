"""The faults the simulation draws, how often, and a count of each one drawn (a fault never drawn tests nothing)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

KINDS = (
    "crash_router",  # an invocation dies between two AWS calls (the batch is delivered again)
    "crash_after_submitjob",  # ... right after its SubmitJob, before the job id is recorded: the riskiest place
    "crash_job",  # a job's process dies between two AWS calls (Batch reports it FAILED)
    "crash_sweep",
    "crash_submit",
    "crash_retry",
    "crash_cancel",
    "record_fails",  # one record of a batch fails; the stream redelivers from it (partial batch response)
    "record_duplicated",
    "record_delayed",  # held back until a sweep has run past its grace
    "record_lost",  # expired or sent to the dead-letter queue
    "listjobs_lag",  # a submitted job is not listed for a while
    "submit_throttled",
    "transaction_conflict",  # a TransactWriteItems meets another transaction on the same item and is cancelled
    "submit_refused",  # SubmitJob refused for good (a queue gone)
    "job_exits_without_writing",
    "job_vanishes",  # Batch loses a running job: the sweep declares it lost; it finishes after everything else
    "event_lost",
    "event_duplicated",
    "event_late",  # a Batch event delivered after later ones
    "retry_races",  # a user's retry while the pipeline runs
    "cancel_races",  # a user's cancel while the pipeline runs
    "same_file_twice",  # two submits of the same file at once
    "video_id_collides",  # the second submit draws the first one's id
)


@dataclass(frozen=True)
class Profile:
    """Probabilities per opportunity (an actor's step, a record read, a job start, ...)."""

    crash: float = 0.04
    crash_after_submitjob: float = 0.25
    record_fails: float = 0.03
    record_duplicated: float = 0.08
    record_delayed: float = 0.05
    record_lost: float = 0.04
    listjobs_lag: float = 0.25
    submit_throttled: float = 0.05
    submit_refused: float = 0.02
    transaction_conflict: float = 0.1  # per TransactWriteItems
    job_exits_without_writing: float = 0.04
    job_vanishes: float = 0.3  # per sweep, when a job runs
    event_lost: float = 0.08
    event_duplicated: float = 0.08
    retry_races: float = 0.08  # per tick (a retry when some video has failed)
    cancel_races: float = 0.008  # per tick (a cancel when some video is active)
    same_file_twice: float = 0.3  # per schedule
    video_id_collides: float = 0.5  # per second submit of the same file


@dataclass
class Faults:
    rng: random.Random
    profile: Profile
    on: bool = True
    counts: Counter[str] = field(default_factory=Counter)
    trace: list[str] = field(default_factory=list)  # what happened, in order: faults here, actions by the world

    def draw(self, kind: str, p: float) -> bool:
        """True (and counted) when this fault happens now; never once the faults are off."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        if self.on and self.rng.random() < p:
            self.counts[kind] += 1
            self.trace.append(f"  fault {kind}")
            return True
        return False
