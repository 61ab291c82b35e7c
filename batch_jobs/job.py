"""The chunk-step job: `python -m batch_jobs run --step S --video-id ID --chunk N --attempt A` (a per-video step
runs as chunk 0 of its video, fenced on the video item's own steps).

Lifecycle: fencing + `running` in one conditional write (only the job whose id is recorded, or the first one, may
run), download the chunk, run the step's action, upload the result JSON with one PUT to its deterministic key, mark
`done` with metrics. Any error marks the step `failed` with a one-line reason and exits non-zero. A job that loses
the fencing check exits 0 without work: the chunk belongs to another job.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_jobs import control, layout
from batch_jobs.actions import StepContext, action_for
from batch_jobs.batch import BatchClient
from batch_jobs.config import StackConfig, load_config, stack_name
from batch_jobs.errors import PipelineError
from batch_jobs.merge import merge_chunk_results, read_json
from batch_jobs.pipeline import PER_VIDEO, chunk_steps, step_index
from batch_jobs.schema import ChunkItem, ResultRef, VideoItem
from batch_jobs.stack import Stack
from batch_jobs.store import Conflict, Store
from batch_jobs.submit import split_s3_source

JOB_ID_ENV = "AWS_BATCH_JOB_ID"
ALLOW_CPU_ENV = "DERBY_BATCH_ALLOW_CPU"  # the local stack and tests run GPU steps on the CPU on purpose
EXIT_FAILED = 1


@dataclass(frozen=True)
class JobArgs:
    step: str
    video_id: str
    chunk: int
    attempt: int


@dataclass(frozen=True)
class JobEnv:
    job_id: str
    stack: str
    allow_cpu: bool

    @classmethod
    def from_environ(cls) -> JobEnv:
        job_id = os.environ.get(JOB_ID_ENV)
        if not job_id:
            raise PipelineError(f"{JOB_ID_ENV} is not set: the job cannot check that it owns the step")
        return cls(job_id=job_id, stack=stack_name(), allow_cpu=os.environ.get(ALLOW_CPU_ENV) == "1")


def one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:500]


def gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _download(s3: Any, bucket: str, key: str, path: Path) -> None:
    """One GetObject (no HEAD first): a missing object is a clear error, not a 404 traceback."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except s3.exceptions.NoSuchKey:
        raise PipelineError(f"missing S3 object s3://{bucket}/{key}") from None
    with path.open("wb") as out:
        for block in body.iter_chunks(1 << 20):
            out.write(block)


class Job:
    """One run of one chunk-step; `run()` returns the process exit code."""

    def __init__(self, args: JobArgs, env: JobEnv, session: Any) -> None:
        self.args, self.env = args, env
        self.session = session
        self.ssm, self.s3 = session.client("ssm"), session.client("s3")
        self.dynamodb = session.client("dynamodb")

    def run(self) -> int:
        config = load_config(self.ssm, self.env.stack)
        pos = step_index(config.pipeline, self.args.step)
        store = Store(self.dynamodb, config.table)
        a = self.args
        if pos == 0:
            return self._split(config, store)
        per_video = config.pipeline[pos].per == PER_VIDEO
        # A per-video step is recorded in the video item's own steps list, after the chunk steps.
        index, at = (None, pos - len(chunk_steps(config.pipeline))) if per_video else (a.chunk, pos)
        what = f"{a.step} of video {a.video_id}" if per_video else f"{a.step} of chunk {a.chunk}"
        started = store.mark_running(a.video_id, index, at, a.attempt, self.env.job_id)
        if isinstance(started, Conflict) and started.item is None:
            raise PipelineError(f"no {'video' if per_video else f'chunk {a.chunk} of video'} {a.video_id!r}")
        if isinstance(started, Conflict):
            print(f"fenced: {what} (attempt {a.attempt}) is not ours to run; exiting without work")
            return 0
        try:
            if per_video:
                result, metrics = self._stitch(config, store, pos)
            else:
                result, metrics = self._work(config, ChunkItem.from_item(started), pos)
        except Exception as exc:
            reason = one_line(exc)
            store.mark_failed(a.video_id, index, at, reason, self.env.job_id)
            print(f"failed: {reason}", file=sys.stderr)
            return EXIT_FAILED
        if isinstance(store.mark_done(a.video_id, index, at, self.env.job_id, result, metrics), Conflict):
            print("the step changed while running (cancelled?); result left unrecorded", file=sys.stderr)
            return EXIT_FAILED
        print(f"done: {what} -> s3://{result.bucket}/{result.key}")
        return 0

    def _split(self, config: StackConfig, store: Store) -> int:
        """The first step of an S3 submit: split the whole video (fenced on the video item, not a chunk)."""
        video_id, job_id = self.args.video_id, self.env.job_id
        started = store.start_split(video_id, job_id, self.args.attempt)
        if isinstance(started, Conflict):
            if started.item is None:
                raise PipelineError(f"no video {video_id!r}")
            print(f"fenced: video {video_id} is not waiting for this split job; exiting without work")
            return 0
        try:
            with tempfile.TemporaryDirectory(prefix="derby-split-") as tmp:
                fields = split_s3_source(self._stack(config, store), VideoItem.from_item(started), Path(tmp))
        except Exception as exc:
            reason = one_line(exc)
            store.fail_split(video_id, job_id, reason, self.args.attempt)
            print(f"failed: {reason}", file=sys.stderr)
            return EXIT_FAILED
        finished = store.finish_split(video_id, job_id, fields)
        if isinstance(finished, Conflict):
            # Cancelled while splitting: the chunks written meanwhile must not walk.
            control.cancel(self._stack(config, store), video_id)
            print(f"video {video_id} was cancelled while splitting; its chunks are cancelled", file=sys.stderr)
            return EXIT_FAILED
        # Chunks that finished before the video was running. A claim of the per-video step made here is submitted
        # by the sweep once its grace is over: the job's role may not submit jobs.
        control.settle(store, VideoItem.from_item(finished), config.pipeline)
        print(f"done: split {video_id} into {fields['chunk_count']} chunks")
        return 0

    def _stack(self, config: StackConfig, store: Store) -> Stack:
        return Stack(config, store, BatchClient(self.session.client("batch")), self.s3, None)

    def _stitch(self, config: StackConfig, store: Store, pos: int) -> tuple[ResultRef, dict[str, Any]]:
        """The per-video step: every chunk's results merged on the source's timeline, chunk-local tracks stitched
        into video-wide ids, written as one document that `results` reads."""
        started = time.monotonic()
        step, video_id = config.pipeline[pos], self.args.video_id
        merged = merge_chunk_results(self.s3, store, config.pipeline, video_id)
        if merged.missing:
            raise PipelineError(f"chunks without a done {merged.step} result: {list(merged.missing)}")
        document = {**merged.document, "step": step.name, "attempt": self.args.attempt, "job_id": self.env.job_id}
        key = layout.video_result_key(video_id, step.name, self.args.attempt)
        return self._put(config, key, document), {
            "frames": len(document["frames"]),
            "chunks": merged.chunks,
            "tracks": len(document.get("tracks", [])),
            "seconds": round(time.monotonic() - started, 3),
            "model": "none",
        }

    def _put(self, config: StackConfig, key: str, document: dict[str, Any]) -> ResultRef:
        """One PUT of the whole document to its attempt's deterministic key: a reader sees all of it or none."""
        body = json.dumps(document, separators=(",", ":")).encode()
        self.s3.put_object(Bucket=config.bucket, Key=key, Body=body, ContentType="application/json")
        return ResultRef(config.bucket, key)

    def _work(self, config: StackConfig, chunk: ChunkItem, pos: int) -> tuple[ResultRef, dict[str, Any]]:
        step = config.pipeline[pos]
        action = action_for(step)
        if step.gpu and not self.env.allow_cpu and not gpu_visible():
            raise PipelineError(f"step {step.name!r} needs a GPU but TensorFlow sees none (set {ALLOW_CPU_ENV}=1)")
        previous = chunk.steps[pos - 1].result
        with tempfile.TemporaryDirectory(prefix="derby-job-") as tmp:
            work = Path(tmp)
            chunk_path = work / ("chunk" + Path(chunk.key).suffix)
            _download(self.s3, config.bucket, chunk.key, chunk_path)

            def previous_result() -> dict[str, Any]:
                if previous is None:
                    raise PipelineError(f"step {pos - 1} of chunk {chunk.index} recorded no result")
                return read_json(self.s3, previous)

            outcome = action(StepContext(step, chunk, chunk_path, work, previous_result))
        document = {
            **outcome.document,
            "step": step.name,
            "attempt": self.args.attempt,
            "job_id": self.env.job_id,  # provenance: the recorded step names the job whose result this is
            "chunk": {
                "video_id": chunk.video_id,
                "index": chunk.index,
                "start_time": chunk.start_time,
                "end_time": chunk.end_time,
                "start_frame": chunk.start_frame,
                "end_frame": chunk.end_frame,
            },
        }
        key = layout.result_key(chunk.video_id, step.name, chunk.index, self.args.attempt)
        return self._put(config, key, document), dict(outcome.metrics)
