"""`python -m devtools.scale` (`make scale`): the pipeline at scale against moto, at Batch's SubmitJob quota.

Two runs, each on a fresh table: one video of 10,000 chunks, and 100 videos of 100 chunks submitted at once.

- **The code under load is the product's:** the local submit's item writer (`register_video`, `Store.put_chunks`,
  `start_video`), the router Lambda's handler fed by the stream poller (the mapping's contract), and the sweep
  through the open index on a schedule. Chunk files are not uploaded: no step here reads them.
- **AWS as the router meets it:** every call waits 10-30 ms before it is sent (a botocore `before-send` hook), and
  SubmitJob passes a token bucket of 50 calls/s (Batch's account quota); past it, Batch's throttling answer (HTTP 429
  `TooManyRequestsException`) comes back without reaching moto, and the router's client must pace itself.
- **Jobs:** a stand-in for Batch starts each submitted job at once and makes the job's two table writes (`running`,
  then `done`) on a pool of threads; the detector itself is not run. The pipeline is the split plus one GPU step, so
  every chunk is counted on its video and every video settles.
- **Clock:** the wall clock, dilated (`--slowdown`, 5 by default; see `Clock`). Latency and throttling are real
  sleeps, so `routing_seconds` (first chunk item written to last job submitted) is measured, not simulated, then
  divided by the dilation; the JSON's `clock` says which.

moto runs in a process of its own, so its work does not share this process's GIL with the router's threads.
The last stdout line is one JSON object: `{"runs": [...]}`.
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.config import Config

from batch_jobs import schema
from batch_jobs.batch import SUBMIT_PACE, SUBMIT_QUOTA, Pacer
from batch_jobs.bootstrap import bootstrap_stack
from batch_jobs.config import StackConfig, default_config
from batch_jobs.pipeline import parse_pipeline
from batch_jobs.schema import ChunkItem, ResultRef, StepRecord, VideoItem
from batch_jobs.store import Store, now_iso, serialize
from batch_jobs.submit import register_video
from cli.local.lambda_context import LambdaContext
from cli.local.stream_poller import MappingSettings, StreamPoller
from devtools.moto_server import serve_process
from router import handler
from router.core import Router
from router.sweep import sweep

PIPELINE = [{"name": "timesplit", "action": "split"}, {"name": "detect", "action": "detect", "gpu": True}]
LATENCY = (0.010, 0.030)
JOB_THREADS = 16
SWEEP_EVERY = 20.0
SUBMITS_AT_ONCE = 10
SLOWDOWN = 5.0
MAPPING = MappingSettings(batch_size=1000)  # the deployed mapping's (playbooks/group_vars/all.yml)


@dataclass(frozen=True)
class Clock:
    """Time dilated `slowdown` times: latency is that much longer, the quota that much lower, and every measured
    span is divided by it. On a small machine moto and this process's boto3 spend milliseconds of CPU on each call;
    dilated, that cost shrinks against the latency and the quota that the run is meant to measure."""

    slowdown: float = 1.0

    def latency(self) -> float:
        return random.uniform(*LATENCY) * self.slowdown

    def seconds(self, span: float) -> float:
        return round(span / self.slowdown, 1)


class TokenBucket:
    """`rate` tokens a second, at most `rate` saved up: what Batch's quota lets through."""

    def __init__(self, rate: float) -> None:
        self.rate, self.tokens, self.at = rate, rate, time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


THROTTLED = json.dumps({"__type": "TooManyRequestsException", "message": "Too Many Requests."}).encode()


@dataclass
class Aws:
    """The hooks that make moto answer like AWS under load: latency on every call, SubmitJob's quota, and a record
    of every job submitted (what the stand-in for Batch runs)."""

    bucket: TokenBucket
    clock: Clock
    jobs: queue.Queue[tuple[str, dict[str, str]]] = field(default_factory=queue.Queue)
    names: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    last_submit: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def session(self) -> boto3.Session:
        session = boto3.Session(region_name="us-east-1")
        session.events.register("before-send", self._before_send)
        session.events.register("after-call.batch.SubmitJob", self._submitted)
        return session

    def _before_send(self, request: Any, **_: Any) -> Any:
        """A response returned here is the call's answer: botocore sends nothing and parses it as AWS's."""
        time.sleep(self.clock.latency())
        if request.url.endswith("/v1/submitjob") and not self.bucket.take():
            with self.lock:
                self.throttled += 1
            headers = HTTPHeaders()
            headers["x-amzn-errortype"] = "TooManyRequestsException"
            return AWSResponse(request.url, 429, headers, _Body(THROTTLED))
        return None

    def _submitted(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if "jobId" not in parsed:
            return
        with self.lock:
            self.names[parsed["jobName"]] += 1
            self.last_submit = time.monotonic()
        self.jobs.put((parsed["jobId"], context["scale_params"]))


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["scale_params"] = dict(params.get("parameters") or {})


def _chunk_items(video_id: str, count: int, config: StackConfig) -> list[ChunkItem]:
    """What the local submit writes for each chunk (the split of a 2 s chunk at 25 fps)."""
    first = config.pipeline[0].name
    return [
        ChunkItem(
            video_id=video_id,
            index=i,
            key=f"chunks/{video_id}/{i:05d}.mp4",
            start_time=2.0 * i,
            end_time=2.0 * (i + 1),
            start_frame=50 * i,
            end_frame=50 * (i + 1),
            steps=(StepRecord(step=first, state=schema.DONE, finished_at=now_iso()),),
        )
        for i in range(count)
    ]


def _submit(store: Store, config: StackConfig, name: str, chunks: int) -> tuple[str, float]:
    """A local submit's table writes; returns the video id and when its first chunk item went out."""
    video = register_video(
        store,
        name,
        lambda video_id: VideoItem(
            video_id=video_id, name=name, source=f"/footage/{name}", duration=2.0 * chunks, fps=25.0, size=1,
            chunk_count=chunks, pipeline=tuple(s.name for s in config.pipeline), created_at=now_iso(),
            state=schema.SUBMITTED,
        ),
    )  # fmt: skip
    started = time.monotonic()
    if not store.put_chunks(video.video_id, _chunk_items(video.video_id, chunks, config)):
        raise RuntimeError(f"video {video.video_id} stopped while its items were written")
    store.start_video(video.video_id)
    return video.video_id, started


def _run_jobs(aws: Aws, store: Store, config: StackConfig, stop: threading.Event) -> None:
    """The stand-in for Batch: each job starts at once and writes what the job writes (`running`, then `done`)."""
    while not stop.is_set():
        try:
            job_id, p = aws.jobs.get(timeout=0.2)
        except queue.Empty:
            continue
        video_id, chunk, attempt = p["video_id"], int(p["chunk"]), int(p["attempt"])
        pos = [s.name for s in config.pipeline].index(p["step"])
        store.mark_running(video_id, chunk, pos, attempt, job_id)
        result = ResultRef(config.bucket, f"results/{video_id}/{chunk}.json")
        store.mark_done(video_id, chunk, pos, job_id, result, {"frames": 50})


def _sweeps(router: Router, clock: Clock, stop: threading.Event, passes: list[dict[str, Any]]) -> None:
    while not stop.wait(SWEEP_EVERY * clock.slowdown):
        started = time.monotonic()
        report = sweep(router)
        passes.append({"seconds": clock.seconds(time.monotonic() - started), "chunks": report.chunks})


def run_case(videos: int, chunks: int, clock: Clock, timeout: float) -> dict[str, Any]:
    config = default_config(f"scale{videos}x{chunks}", "us-east-1")
    config = replace(config, pipeline=parse_pipeline(PIPELINE))
    bootstrap_stack(boto3.Session(region_name="us-east-1"), config)
    aws = Aws(TokenBucket(SUBMIT_QUOTA / clock.slowdown), clock)
    session = aws.session()
    session.events.register("before-parameter-build.batch.SubmitJob", _keep_params)
    router = Router.from_session(session, config.stack)
    router.batch.pacer = Pacer(SUBMIT_PACE / clock.slowdown)  # the router's own pacing, dilated with the quota
    handler.set_router(router)
    streams = session.client("dynamodbstreams")
    stream_arn = str(session.client("dynamodb").describe_table(TableName=config.table)["Table"]["LatestStreamArn"])
    poller = StreamPoller(streams, stream_arn, lambda event: handler.lambda_handler(event, LambdaContext()), MAPPING)
    job_store = Store(aws.session().client("dynamodb", config=_pool()), config.table)
    stop = threading.Event()
    workers = [threading.Thread(target=_run_jobs, args=(aws, job_store, config, stop)) for _ in range(JOB_THREADS)]
    passes: list[dict[str, Any]] = []
    workers.append(threading.Thread(target=_sweeps, args=(router, clock, stop, passes)))
    for w in workers:
        w.start()
    poller.start()
    user = Store(aws.session().client("dynamodb", config=_pool()), config.table)
    with ThreadPoolExecutor(SUBMITS_AT_ONCE) as pool:
        began = time.monotonic()
        submitted = list(pool.map(lambda i: _submit(user, config, f"game-{i:03d}.mp4", chunks), range(videos)))
        submit_seconds = time.monotonic() - began
    first_item = min(started for _, started in submitted)
    deadline = time.monotonic() + timeout * clock.slowdown
    ids = [video_id for video_id, _ in submitted]
    while time.monotonic() < deadline and not all(user.get_video(v).state in schema.FINAL for v in ids):
        time.sleep(1.0)
    stop.set()
    poller.stop()
    for w in workers:
        w.join()
    handler.set_router(None)
    final = [user.get_video(v) for v in ids]
    raw_video = user.client.get_item(TableName=config.table, Key=serialize(schema.video_key(ids[0])))
    jobs = videos * chunks * (len(config.pipeline) - 1)
    return {
        "videos": videos,
        "chunks": videos * chunks,
        "jobs_submitted": sum(aws.names.values()),
        "jobs_expected": jobs,
        "duplicate_jobs": sum(n - 1 for n in aws.names.values()),
        "stuck": sum(v.chunk_count - v.chunks_done - v.chunks_failed for v in final)
        + sum(v.state != schema.DONE for v in final),
        "lost": jobs - len(aws.names),
        "routing_seconds": clock.seconds(aws.last_submit - first_item),
        "quota_bound_seconds": round(jobs / SUBMIT_QUOTA, 1),
        "video_item_kb": round(len(json.dumps(raw_video["Item"])) / 1024, 2),
        "submit_seconds": clock.seconds(submit_seconds),
        "throttled_calls": aws.throttled,
        "sweep_passes": passes,
        "clock": "wall" if clock.slowdown == 1 else f"wall, dilated {clock.slowdown:g}x",
    }


def _pool() -> Config:
    return Config(max_pool_connections=32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="1x10000,100x100", help="VIDEOSxCHUNKS, comma-separated")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a case may take to settle")
    parser.add_argument("--slowdown", type=float, default=SLOWDOWN, help="time dilation (see `Clock`)")
    ns = parser.parse_args(argv)
    server, _ = serve_process("scale")
    runs = []
    try:
        for case in ns.cases.split(","):
            videos, chunks = (int(n) for n in case.split("x"))
            run = run_case(videos, chunks, Clock(ns.slowdown), ns.timeout)
            ratio = run["routing_seconds"] / run["quota_bound_seconds"]
            print(f"{case}: routing {run['routing_seconds']} s ({ratio:.2f}x the quota bound), {run}", flush=True)
            runs.append(run)
    finally:
        server.terminate()
        server.wait()
    print(json.dumps({"runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
