"""One seeded schedule: a fresh stack, a few videos submitted, the real router, jobs, sweep, retry and cancel run as
actors interleaved at their AWS calls, faults drawn from the seed; then the faults stop, the repairs run until nothing
moves, failed videos are retried, and the invariants are checked on what is left.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import boto3

from batch_jobs import control, schema
from batch_jobs import submit as submit_module
from batch_jobs.batch import BatchClient
from batch_jobs.bootstrap import bootstrap_stack, create_table, write_config
from batch_jobs.config import default_config
from batch_jobs.job import Job, JobArgs, JobEnv
from batch_jobs.pipeline import parse_pipeline
from batch_jobs.stack import Stack
from batch_jobs.store import SUBMIT_LEASE_SECONDS, Store
from cli.local.lambda_context import InvocationCrash
from cli.local.stream_poller import MappingSettings, StreamPoller
from devtools.drive import CachedSession, batch_event, invoke
from devtools.moto_server import reset
from devtools.sim.actors import Actor, Killed, Scheduler
from devtools.sim.batch import API_PARAMS, RUNNING, SimBatch, SimJob, stash_params
from devtools.sim.faults import Faults, Profile
from devtools.sim.invariants import Final, check, read_chunks, read_document, retriable
from router import handler
from router.core import Router
from router.handler import THREADS_ENV
from router.sweep import SweepReport, sweep

REGION = "us-east-1"
PIPELINE = parse_pipeline(
    [
        {"name": "timesplit", "action": "split"},
        {"name": "probe", "action": "probe"},
        {"name": "summarize", "action": "summarize"},
        {"name": "stitch", "action": "stitch", "per": "video"},
    ]
)
CHUNK_SECONDS = 1.0
FAULT_TICKS = 70
PAST_GRACE = timedelta(minutes=6)  # a sweep this far ahead of the wall clock sees every claim and submit as stale
# The heal's sweeps run later still: past the submit lease that a crashed past-grace sweep left behind.
HEAL_AHEAD = PAST_GRACE + 2 * timedelta(seconds=SUBMIT_LEASE_SECONDS)
HEAL_ROUNDS = 60
EVENT_TRIES = 4  # EventBridge retries a failed invocation
SCHEDULES_PER_RESET = 20


@dataclass
class Outcome:
    seed: int
    videos: int
    chunks: int
    faults: dict[str, int]
    violations: list[tuple[str, str]]
    trace: list[str]


@dataclass
class Clients:
    """One actor family's boto3 clients, so hooks can be attached per family."""

    dynamodb: Any
    batch: Any
    s3: Any


class Wiring:
    """A worker process's boto3 clients, made once (making a client costs more than many calls), with hooks that
    forward to the schedule now running: the scheduler's parking, the write history, the Batch table."""

    _instance: Wiring | None = None

    def __init__(self) -> None:
        # The router handles a delivery's records on the invoking thread, where the scheduler parks its calls;
        # records handled at once are the scheduler's concurrent deliveries.
        os.environ[THREADS_ENV] = "1"
        self.session = CachedSession(boto3.Session(region_name=REGION))
        self.world: World | None = None
        self.raw_batch = boto3.Session(region_name=REGION).client("batch")
        self.router = Clients(self._hooked("dynamodb"), self._hooked("batch"), self._hooked("s3"))
        self.user = Clients(self._hooked("dynamodb"), self._hooked("batch"), self._hooked("s3"))
        self.jobs = JobClients({name: self._hooked(name) for name in ("ssm", "s3", "dynamodb", "batch")})
        # One bucket, queues and job definitions for the worker's schedules; each schedule has its own table and
        # stack name (so its own job names): bootstrapping those per schedule cost a third of a schedule.
        self.base = default_config("simbase", REGION, pipeline=PIPELINE)
        self.schedules = 0
        bootstrap_stack(self.session, self.base)

    def next_schedule(self) -> None:
        """Every few schedules, moto starts empty again: its job lists grow with every schedule, and ListJobs and
        DescribeJobs over the shared queues slowed a 500-schedule run from 1.5 s to 2.6 s a schedule."""
        self.schedules += 1
        if self.schedules % SCHEDULES_PER_RESET == 0:
            reset(os.environ["AWS_ENDPOINT_URL"])
            bootstrap_stack(self.session, self.base)

    @classmethod
    def get(cls) -> Wiring:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _world(self) -> World:
        if self.world is None:
            raise RuntimeError("no schedule is running")
        return self.world

    def _hooked(self, service: str) -> Any:
        client = boto3.Session(region_name=REGION).client(service)  # type: ignore[call-overload]
        events = client.meta.events
        events.register("before-parameter-build", stash_params)
        events.register("before-call", lambda **kw: self._world().sched.park(**kw))
        events.register("after-call", lambda **kw: self._world().record_write(**kw))
        if service == "dynamodb":
            conflict = "before-call.dynamodb.TransactWriteItems"
            events.register(conflict, lambda _c=client, **kw: self._world().transaction_conflict(_c, **kw))
        if service == "batch":
            for event, method in SimBatch.HOOKS:
                events.register(event, lambda _m=method, **kw: getattr(self._world().batch, _m)(**kw))
        return client


@dataclass(frozen=True)
class JobClients:
    """What `Job` asks its session for: clients by service name."""

    clients: dict[str, Any]

    def client(self, name: str) -> Any:
        return self.clients[name]


@dataclass
class World:
    seed: int
    rng: random.Random
    faults: Faults
    clip: Path
    work: Path
    sched: Scheduler = field(default_factory=Scheduler)
    queue: list[dict[str, Any]] = field(default_factory=list)  # stream records read, not yet delivered
    delayed: list[dict[str, Any]] = field(default_factory=list)  # held until a sweep past the grace has run
    events: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # (event, tries left)
    owned: set[str] = field(default_factory=set)
    job_writes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    submits: list[Actor] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # video ids handed to submits, in order
    retried: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)  # by a user: `retry` leaves their cancelled chunks alone

    def __post_init__(self) -> None:
        wiring = Wiring.get()
        wiring.next_schedule()
        wiring.world = self
        stack = f"s{self.seed % 100000}{uuid.uuid4().hex[:4]}"
        self.config = replace(wiring.base, stack=stack, table=f"{stack}-items")  # its own table, shared Batch
        self.stream_arn = create_table(wiring.session.client("dynamodb"), self.config.table)
        write_config(wiring.session.client("ssm"), self.config)
        self.s3 = wiring.session.client("s3")
        self.batch = SimBatch(wiring.raw_batch)
        self.user = wiring.user
        self.jobs_session = wiring.jobs
        self.router = Router(
            self.config, Store(wiring.router.dynamodb, self.config.table), BatchClient(wiring.router.batch)
        )
        self.store = Store(wiring.session.client("dynamodb"), self.config.table)  # the checker's own, unhooked
        self.poller = StreamPoller(
            wiring.session.client("dynamodbstreams"),
            self.stream_arn,
            invoke,
            MappingSettings(batch_size=4, max_retries=10, backoff_seconds=0.0),
            report=lambda _line: None,
        )

    def record_write(self, http_response: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        actor, params = self.sched.current, context.get(API_PARAMS, {})
        if actor is None or http_response.status_code >= 300:
            return
        name = model.name
        if name in ("PutObject", "CreateMultipartUpload"):
            actor.writes.append(("s3", params["Key"]))
        elif name in ("PutItem", "UpdateItem", "DeleteItem"):
            key = params.get("Key") or params.get("Item") or {}
            actor.writes.append(("ddb", key.get("pk", {}).get("S", "")))
            if "job_id = :job" in params.get("UpdateExpression", ""):  # video items' steps never reach the stream
                self.owned.add(params["ExpressionAttributeValues"][":job"]["S"])
        elif name == "TransactWriteItems":
            for entry in params["TransactItems"]:
                for op in entry.values():
                    key = op.get("Key") or op.get("Item") or {}
                    actor.writes.append(("ddb", key.get("pk", {}).get("S", "")))

    def transaction_conflict(self, client: Any, context: dict[str, Any], **_: Any) -> None:
        """`before-call` hook: DynamoDB cancels a transaction that met another one on one of its items."""
        if self.sched.current is None or not self.faults.draw(
            "transaction_conflict", self.faults.profile.transaction_conflict
        ):
            return
        codes = ["None"] * len(context[API_PARAMS]["TransactItems"])
        codes[self.rng.randrange(len(codes))] = "TransactionConflict"
        response: Any = {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": c} for c in codes],
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        raise client.exceptions.TransactionCanceledException(response, "TransactWriteItems")

    def note(self, line: str) -> None:
        self.faults.trace.append(f"{self.batch.tick:3d} {line}")

    # -- the stream -----------------------------------------------------------------------------------------------
    def read_stream(self) -> None:
        for record in self.poller.read():
            self._note_owner(record)
            if self.faults.draw("record_lost", self.faults.profile.record_lost):
                continue
            if self.faults.draw("record_delayed", self.faults.profile.record_delayed):
                self.delayed.append(record)
                continue
            self.queue.append(record)
            if self.faults.draw("record_duplicated", self.faults.profile.record_duplicated):
                self.queue.append(record)

    def _note_owner(self, record: dict[str, Any]) -> None:
        steps = record["dynamodb"].get("NewImage", {}).get("steps", {}).get("L", [])
        for step in steps:
            job = step.get("M", {}).get("job_id", {}).get("S")
            if job:
                self.owned.add(job)

    def spawn_delivery(self, everything: bool = False) -> None:
        n = len(self.queue) if everything else self.rng.randint(1, min(4, len(self.queue)))
        batch, self.queue = self.queue[:n], self.queue[n:]
        self.note(f"deliver {[_describe(r) for r in batch]}")
        self.sched.spawn(Actor("stream", f"deliver-{len(batch)}", lambda: self.poller.deliver(batch)))

    # -- Batch ----------------------------------------------------------------------------------------------------
    def spawn_job(self, job: SimJob) -> None:
        self.note(f"start job {job.name} ({job.job_id[:8]})")
        self.batch.start(job)
        if self.faults.draw("job_exits_without_writing", self.faults.profile.job_exits_without_writing):
            self._ended(job, 0)
            return
        p = job.parameters
        args = JobArgs(p["step"], p["video_id"], int(p["chunk"]), int(p["attempt"]))
        env = JobEnv(job.job_id, self.config.stack, allow_cpu=True)
        self.sched.spawn(Actor("job", job.name, lambda: Job(args, env, self.jobs_session).run(), {"job": job}))

    def _ended(self, job: SimJob, exit_code: int, reason: str = "") -> None:
        ok = exit_code == 0
        reason = reason or ("" if ok else "Essential container in task exited")
        self.note(f"job {job.name} ended: exit {exit_code} {reason}")
        self.batch.end(job, ok, reason)
        status = "SUCCEEDED" if ok else "FAILED"
        self.events.append((batch_event(job.description, status, reason, exit_code), EVENT_TRIES))
        if self.faults.draw("event_duplicated", self.faults.profile.event_duplicated):
            self.events.append((batch_event(job.description, status, reason, exit_code), EVENT_TRIES))

    def end_terminated_queued(self) -> None:
        for job in self.batch.queued():
            if job.terminated is not None:
                self._ended(job, 1, job.terminated)

    def spawn_event(self, index: int) -> None:
        event, tries = self.events.pop(index)
        self.note(f"event {event['detail']['jobName']} {event['detail']['status']}")
        if index and self.faults.on:
            self.faults.counts["event_late"] += 1
        if self.faults.draw("event_lost", self.faults.profile.event_lost):
            return
        self.sched.spawn(Actor("event", "event", lambda: invoke(event), {"event": event, "tries": tries}))

    # -- the sweep and the user -----------------------------------------------------------------------------------
    def spawn_sweep(self, past_grace: bool) -> None:
        running = [j for j in self.batch.jobs.values() if j.phase == RUNNING and not j.vanished]
        if running and self.faults.draw("job_vanishes", self.faults.profile.job_vanishes):
            lost = self.rng.choice(running)
            lost.vanished = True
            for actor in self.sched.live:
                actor.held = actor.held or actor.meta.get("job") is lost  # it comes back once all else is over
        now = datetime.now(UTC) + (PAST_GRACE if past_grace else timedelta(0))
        self.note(f"sweep{' past the grace' if past_grace else ''}")
        self.sched.spawn(Actor("sweep", "sweep", lambda: sweep(self.router, now=now), {"past_grace": past_grace}))

    def spawn_submit(self) -> None:
        n = len(self.submits)
        forced = [f"clip-{self.rng.getrandbits(24):06x}"]
        if self.ids and self.faults.draw("video_id_collides", self.faults.profile.video_id_collides):
            forced = [self.ids[-1], *forced]  # the first draw is taken: the conditional create draws again
        self.ids.append(forced[-1])
        self.note(f"submit{n} draws ids {forced}")
        work = self.work / f"submit{n}"

        def body() -> Any:
            return submit_module.submit_file(self.user_stack(), self.clip, work, chunk_seconds=CHUNK_SECONDS)

        self.submits.append(self.sched.spawn(Actor("submit", f"submit{n}", body, {"ids": forced})))

    def spawn_retry(self, video_id: str) -> Actor:
        self.note(f"retry {video_id}")
        stack = self.user_stack()
        return self.sched.spawn(Actor("retry", f"retry-{video_id}", lambda: control.retry(stack, video_id)))

    def spawn_cancel(self, video_id: str) -> None:
        self.note(f"cancel {video_id}")
        self.cancelled.add(video_id)
        stack = self.user_stack()
        self.sched.spawn(Actor("cancel", f"cancel-{video_id}", lambda: control.cancel(stack, video_id)))

    def user_stack(self) -> Stack:
        """The stack as a user's commands hold it: the user's hooked clients."""
        user = self.user
        return Stack(self.config, Store(user.dynamodb, self.config.table), BatchClient(user.batch), user.s3, None)

    # -- stepping -------------------------------------------------------------------------------------------------
    def advance(self, actor: Actor) -> None:
        kill = self._kill_for(actor)
        self.sched.step(actor, kill)
        ended = f" -> ended {actor.error!r}" if actor.done and actor.error else " -> ended" if actor.done else ""
        self.note(f"  {actor.name} after call {actor.calls}{f' killed: {kill!r}' if kill else ''}{ended}")
        if actor.done:
            self._finished(actor)

    def _kill_for(self, actor: Actor) -> BaseException | None:
        if actor.kind == "job" and actor.meta["job"].terminated is not None:
            return Killed("terminated")
        if actor.calls == 0 or not self.faults.on:
            return None  # not yet at an AWS call
        p = self.faults.profile
        if actor.kind in ("stream", "event"):
            after_submit = actor.done_call == "SubmitJob"
            if after_submit and self.faults.draw("crash_after_submitjob", p.crash_after_submitjob):
                return InvocationCrash()
            if self.faults.draw("crash_router", p.crash):
                return InvocationCrash()
            if actor.kind == "stream" and self.faults.draw("record_fails", p.record_fails):
                return RuntimeError("injected: this record fails")
            return None
        if self.faults.draw(f"crash_{actor.kind}", p.crash):
            return Killed(actor.kind)
        return None

    def _finished(self, actor: Actor) -> None:
        if actor.kind == "job":
            job: SimJob = actor.meta["job"]
            if isinstance(actor.error, Killed):
                reason = f"terminated: {job.terminated}" if job.terminated else "Host EC2 (instance i-sim) terminated."
                self._ended(job, 137, reason)
            else:
                self._ended(job, actor.result if isinstance(actor.result, int) else 1)
            self.job_writes[job.job_id] = list(actor.writes)
        elif actor.kind == "event" and actor.error is not None and actor.meta["tries"] > 1:
            self.events.append((actor.meta["event"], actor.meta["tries"] - 1))  # EventBridge retries it
        elif actor.kind == "sweep" and actor.error is None and actor.meta["past_grace"]:
            self.queue += self.delayed  # late records arrive after the sweep has passed their grace
            self.delayed = []

    def finish_all(self) -> bool:
        """Run every actor to its end, but the held ones (lost jobs come back only after the retries)."""
        moved = False
        while runnable := [a for a in self.sched.live if not a.held]:
            self.advance(runnable[0])
            moved = True
        return moved

    # -- phases ---------------------------------------------------------------------------------------------------
    def run_faults(self) -> None:
        p = self.faults.profile
        self.spawn_submit()
        if self.faults.draw("same_file_twice", p.same_file_twice):
            self.spawn_submit()
        second_at = self.rng.randint(5, 30) if self.rng.random() < 0.5 else None
        for tick in range(FAULT_TICKS):
            self.batch.tick = tick
            self.batch.lag_ticks = self.rng.randint(3, 12) if self.faults.draw("listjobs_lag", p.listjobs_lag) else 0
            if self.faults.draw("submit_throttled", p.submit_throttled):
                self.batch.refuse_submit = "throttle"
            elif self.faults.draw("submit_refused", p.submit_refused):
                self.batch.refuse_submit = "refuse"
            if tick == second_at:
                self.spawn_submit()
            self.read_stream()
            self.end_terminated_queued()
            self._tick()

    def _tick(self) -> None:
        p = self.faults.profile
        runnable = [a for a in self.sched.live if not a.held]
        choices: list[tuple[float, Callable[[], None]]] = [(3.0, partial(self.advance, a)) for a in runnable]
        if self.queue and not any(a.kind == "stream" for a in self.sched.live):
            choices.append((3.0, self.spawn_delivery))
        queued = [j for j in self.batch.queued() if j.terminated is None]
        if queued:
            choices.append((2.0, lambda: self.spawn_job(self.rng.choice(queued))))
        if self.events:
            choices.append((2.0, lambda: self.spawn_event(self.rng.randrange(len(self.events)))))
        choices.append((0.3, lambda: self.spawn_sweep(self.rng.random() < 0.5)))
        if self.rng.random() < p.retry_races:  # a user looks for a failed video to retry
            failed = [v.video_id for v in self.store.videos() if v.state == schema.FAILED]
            if failed:
                self.faults.counts["retry_races"] += 1
                self.spawn_retry(self.rng.choice(failed))
        if self.rng.random() < p.cancel_races:
            active = [v.video_id for v in self.store.videos() if v.state in schema.ACTIVE]
            if active:
                self.faults.counts["cancel_races"] += 1
                self.spawn_cancel(self.rng.choice(active))
        weights = [w for w, _ in choices]
        self.rng.choices([c for _, c in choices], weights)[0]()

    def heal(self) -> bool:
        """No more faults: run everything to its end, deliver everything, sweep, until a sweep finds nothing."""
        if self.faults.on:
            self.note("faults stop")
            for job in self.batch.jobs.values():
                job.hidden_until, job.phase_at_heal = 0, job.phase
        self.faults.on = False
        self.batch.lag_ticks, self.batch.refuse_submit = 0, None
        for _ in range(HEAL_ROUNDS):
            moved = self.finish_all()
            self.queue += self.delayed
            self.delayed = []
            self.read_stream()
            if self.queue:
                self.spawn_delivery(everything=True)
                moved = True
            while self.events:
                self.spawn_event(0)
                moved = True
            self.finish_all()
            if moved:
                continue
            report = self._sweep_now()  # first, so it meets the jobs no chunk owns while they still wait
            self.end_terminated_queued()
            waiting = [j for j in self.batch.queued() if j.terminated is None]
            for job in waiting:
                self.spawn_job(job)
            repaired = report.submitted or report.claimed or report.ended or report.counted or report.interrupted
            if not (waiting or repaired or report.orphans or self.events):
                return True
        return False

    def _sweep_now(self) -> SweepReport:
        now = datetime.now(UTC) + HEAL_AHEAD
        actor = self.sched.spawn(Actor("sweep", "sweep", lambda: sweep(self.router, now=now)))
        self.sched.finish(actor)
        if actor.error is not None:
            raise actor.error
        return actor.result

    def retry_failed(self) -> None:
        """A user retries each video that failed in a chunk step or its own per-video step, once the faults are gone;
        the retry races the stream, and may be interrupted once (then the user runs it again). A video the user also
        cancelled is not expected to recover (a cancel that lost the race to a failure leaves it failed, its chunks
        cancelled)."""
        failed = [
            v
            for v in self.store.videos()
            if v.state == schema.FAILED and retriable(v) and v.video_id not in self.cancelled
        ]
        for video in failed:
            self.retried.add(video.video_id)
            retry = self.spawn_retry(video.video_id)
            crash_at = self.rng.randint(1, 6) if self.rng.random() < 0.5 else None
            while not retry.done:
                self.read_stream()
                if self.queue and self.rng.random() < 0.5 and not any(a.kind == "stream" for a in self.sched.live):
                    self.spawn_delivery()
                others = [a for a in self.sched.live if a is not retry and not a.held]
                if others and self.rng.random() < 0.5:
                    self.advance(self.rng.choice(others))
                    continue
                kill = Killed("retry") if crash_at is not None and retry.calls == crash_at else None
                if kill is not None:
                    self.faults.counts["crash_retry"] += 1
                self.sched.step(retry, kill)
            if isinstance(retry.error, Killed):
                self.heal()
                self.sched.finish(self.spawn_retry(video.video_id))
        self.heal()

    def release_lost_jobs(self) -> None:
        """The jobs Batch lost track of finish now, after the repairs and the retries: their writes must change
        nothing that was recorded."""
        for actor in self.sched.live:
            if actor.held:
                self.note(f"lost job {actor.name} comes back")
                actor.held = False
        self.heal()

    def final(self) -> Final:
        self.read_stream()  # the owners written since the last delivery
        videos = {v.video_id: v for v in self.store.videos()}
        chunks = {vid: read_chunks(self.store.chunk_items(vid)) for vid in videos}
        s3 = self.s3
        results: dict[str, dict[str, Any] | None] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.config.bucket, Prefix="videos/"):
            for obj in page.get("Contents", []):
                if "/results/" in obj["Key"]:
                    body = s3.get_object(Bucket=self.config.bucket, Key=obj["Key"])["Body"].read()
                    results[obj["Key"]] = read_document(body)
        return Final(
            videos=videos,
            chunks=chunks,
            results=results,
            jobs=self.batch.jobs,
            owned=self.owned,
            job_writes=self.job_writes,
            submit_writes=[a.writes for a in self.submits],
            retried=self.retried,
        )


def _describe(record: dict[str, Any]) -> str:
    """`chunk#00001 probe:submitted` for a trace line."""
    body = record["dynamodb"]
    steps = body.get("NewImage", {}).get("steps", {}).get("L", [])
    last = steps[-1]["M"] if steps else {}
    state = f"{last.get('step', {}).get('S')}:{last.get('state', {}).get('S')}" if last else record["eventName"]
    return f"{body['Keys']['sk']['S']} {state}{'+job' if 'job_id' in last else ''}"


@contextmanager
def forced_video_ids(sched: Scheduler) -> Iterator[None]:
    """Submits draw their ids from the seed (and, for a collision, one already taken) instead of the system's
    randomness, so a schedule replays exactly."""
    original = submit_module.new_video_id

    def draw(file_name: str) -> str:
        actor = sched.current
        ids = actor.meta.get("ids") if actor is not None else None
        return ids.pop(0) if ids else original(file_name)

    submit_module.new_video_id = draw
    try:
        yield
    finally:
        submit_module.new_video_id = original


def run_schedule(seed: int, clip: Path, work: Path, profile: Profile | None = None) -> Outcome:
    rng = random.Random(seed)
    world = World(seed, rng, Faults(rng, profile or Profile()), clip, work)
    handler.set_router(world.router)  # the handler's router: this stack, these hooked clients
    try:
        with forced_video_ids(world.sched):
            world.run_faults()
            healed = world.heal()
            if healed:
                world.retry_failed()
            world.release_lost_jobs()
        violations = check(world.final())
        if not healed:
            violations.append(("no_video_stuck", f"the repairs did not settle within {HEAL_ROUNDS} rounds"))
    finally:
        while world.sched.live:  # a schedule that raised: let no thread wait forever
            world.sched.step(world.sched.live[0], Killed("schedule over"))
        handler.set_router(None)
    chunks = sum(v.chunk_count for v in world.store.videos())
    return Outcome(seed, len(world.ids), chunks, dict(world.faults.counts), violations, world.faults.trace)
