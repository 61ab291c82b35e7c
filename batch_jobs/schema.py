"""Items of the table: one per video, one per chunk; their keys, states and the allowed state transitions.

Items are plain Python dicts here (what boto3's TypeDeserializer returns); `store.py` does the conditional writes.
A malformed item raises `MalformedItem` with a one-line reason so the router can record it and move on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from batch_jobs.errors import PipelineError

SUBMITTED = "submitted"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (SUBMITTED, RUNNING, DONE, FAILED, CANCELLED)
ACTIVE = frozenset({SUBMITTED, RUNNING})
FINAL = frozenset({DONE, FAILED, CANCELLED})

# A failed step goes back to submitted only through `retry`, with a new attempt number.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    SUBMITTED: frozenset({RUNNING, FAILED, CANCELLED}),
    RUNNING: frozenset({DONE, FAILED, CANCELLED}),
    FAILED: frozenset({SUBMITTED}),
    DONE: frozenset(),
    CANCELLED: frozenset(),
}

VIDEO_SK = "video"
CHUNK_PREFIX = "chunk#"
PK_PREFIX = "video#"

# The sparse `open` index (keys only) lists what may still need the sweep: chunks not yet counted on their video
# (`open = "chunk"`), videos not yet settled (`open = "video"`). A finished item leaves it, so a pass reads what is
# in flight, not the table's history.
OPEN_INDEX = "open"
OPEN_CHUNK = "chunk"
OPEN_VIDEO = "video"


class MalformedItem(PipelineError):
    """An item that does not follow the schema (hand-edited, or written by an incompatible version)."""


def can_transition(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


def video_pk(video_id: str) -> str:
    return f"{PK_PREFIX}{video_id}"


def chunk_sk(index: int) -> str:
    return f"{CHUNK_PREFIX}{index:05d}"


def video_key(video_id: str) -> dict[str, str]:
    return {"pk": video_pk(video_id), "sk": VIDEO_SK}


def steps_key(video_id: str, index: int | None) -> dict[str, str]:
    """The item whose `steps` list records a step: chunk `index`'s, or (None) the video's own per-video steps."""
    return video_key(video_id) if index is None else chunk_key(video_id, index)


def chunk_key(video_id: str, index: int) -> dict[str, str]:
    return {"pk": video_pk(video_id), "sk": chunk_sk(index)}


def chunk_index(sk: str) -> int | None:
    """The index in a chunk item's sort key, read without trusting the rest of the item (it may be malformed)."""
    digits = sk.removeprefix(CHUNK_PREFIX)
    return int(digits) if sk.startswith(CHUNK_PREFIX) and digits.isdigit() else None


def is_chunk_item(item: Mapping[str, Any]) -> bool:
    return str(item.get("sk", "")).startswith(CHUNK_PREFIX)


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise MalformedItem(f"{what} must be a number, got {value!r}")
    return float(value)


def _int(value: Any, what: str) -> int:
    number = _num(value, what)
    if number != int(number):
        raise MalformedItem(f"{what} must be an integer, got {value!r}")
    return int(number)


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedItem(f"{what} must be a non-empty string, got {value!r}")
    return value


def _opt_str(value: Any, what: str) -> str | None:
    return None if value is None else _str(value, what)


def plain(value: Any) -> Any:
    """Decimals from DynamoDB back to int/float, recursively, so results and JSON output stay plain."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    return value


@dataclass(frozen=True)
class ResultRef:
    bucket: str
    key: str


@dataclass(frozen=True)
class StepRecord:
    """One entry of a chunk's `steps` list; index i in the list is step i of the pipeline."""

    step: str
    state: str
    attempt: int = 1
    job_id: str | None = None
    claimed_at: str | None = None  # when this attempt became `submitted` (a claim or a retry)
    submitting_until: str | None = None  # the lease on submitting this attempt's job (`store.Lease`) ...
    submitting_by: str | None = None  # ... and who holds it
    started_at: str | None = None
    finished_at: str | None = None
    result: ResultRef | None = None
    error: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_item(cls, raw: Any) -> StepRecord:
        if not isinstance(raw, dict):
            raise MalformedItem(f"step entry must be a map, got {raw!r}")
        state = _str(raw.get("state"), "step state")
        if state not in STATES:
            raise MalformedItem(f"unknown step state {state!r}")
        result = raw.get("result")
        if result is not None and not (isinstance(result, dict) and "bucket" in result and "key" in result):
            raise MalformedItem(f"step result must be {{bucket, key}}, got {result!r}")
        metrics = raw.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise MalformedItem(f"step metrics must be a map, got {metrics!r}")
        return cls(
            step=_str(raw.get("step"), "step name"),
            state=state,
            attempt=_int(raw.get("attempt", 1), "step attempt"),
            job_id=_opt_str(raw.get("job_id"), "job id"),
            claimed_at=_opt_str(raw.get("claimed_at"), "claimed_at"),
            submitting_until=_opt_str(raw.get("submitting_until"), "submitting_until"),
            submitting_by=_opt_str(raw.get("submitting_by"), "submitting_by"),
            started_at=_opt_str(raw.get("started_at"), "started_at"),
            finished_at=_opt_str(raw.get("finished_at"), "finished_at"),
            result=ResultRef(str(result["bucket"]), str(result["key"])) if result else None,
            error=_opt_str(raw.get("error"), "step error"),
            metrics=plain(metrics),
        )

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"step": self.step, "state": self.state, "attempt": self.attempt}
        for name in ("job_id", "claimed_at", "submitting_until", "submitting_by", "started_at", "finished_at", "error"):
            if getattr(self, name) is not None:
                item[name] = getattr(self, name)
        if self.result:
            item["result"] = {"bucket": self.result.bucket, "key": self.result.key}
        if self.metrics:
            item["metrics"] = dict(self.metrics)
        return item


@dataclass(frozen=True)
class ChunkItem:
    """A chunk of a video: where it is in S3, its exact place in the source, and its progress through the steps."""

    video_id: str
    index: int
    key: str
    start_time: float
    end_time: float
    start_frame: int
    end_frame: int  # exclusive
    steps: tuple[StepRecord, ...]
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)  # the video's analysis options (every, fps)
    cancelled: bool = False
    error: str | None = None
    counted: str | None = None  # `done` or `failed` once its video counted it (a retry takes the mark away)

    @property
    def last(self) -> StepRecord:
        return self.steps[-1]

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ChunkItem:
        pk, sk = str(item.get("pk", "")), str(item.get("sk", ""))
        if not pk.startswith(PK_PREFIX) or not sk.startswith(CHUNK_PREFIX):
            raise MalformedItem(f"not a chunk item: pk={pk!r} sk={sk!r}")
        steps = item.get("steps")
        if not isinstance(steps, list) or not steps:
            raise MalformedItem(f"chunk {sk}: steps must be a non-empty list, got {steps!r}")
        index = _int(item.get("index"), "chunk index")
        if chunk_sk(index) != sk:
            raise MalformedItem(f"chunk index {index} does not match sort key {sk!r}")
        return cls(
            video_id=pk[len(PK_PREFIX) :],
            index=index,
            key=_str(item.get("key"), "chunk key"),
            start_time=_num(item.get("start_time"), "start_time"),
            end_time=_num(item.get("end_time"), "end_time"),
            start_frame=_int(item.get("start_frame"), "start_frame"),
            end_frame=_int(item.get("end_frame"), "end_frame"),
            steps=tuple(StepRecord.from_item(s) for s in steps),
            options=plain(item.get("options") or {}),
            cancelled=bool(item.get("cancelled", False)),
            error=_opt_str(item.get("error"), "chunk error"),
            counted=_opt_str(item.get("counted"), "counted"),
        )

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            **chunk_key(self.video_id, self.index),
            "video_id": self.video_id,
            "index": self.index,
            "key": self.key,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "steps": [s.to_item() for s in self.steps],
            "options": dict(self.options),
        }
        if self.cancelled:
            item["cancelled"] = True
        if self.error:
            item["error"] = self.error
        if self.counted:
            item["counted"] = self.counted
        else:
            item[OPEN_INDEX] = OPEN_CHUNK
        return item


@dataclass(frozen=True)
class VideoItem:
    """A submitted video. `chunks_done`/`chunks_failed` are counters, kept exact under stream replays by each chunk's
    `counted` mark, which changes in the same transaction (sets of indexes grew towards DynamoDB's 400 KB item limit
    with the video)."""

    video_id: str
    name: str
    source: str
    duration: float
    fps: float
    size: int
    chunk_count: int
    pipeline: tuple[str, ...]
    created_at: str
    state: str
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    chunks_done: int = 0
    chunks_failed: int = 0
    error: str | None = None
    # An S3 submit's split job: its attempt (a `retry` of a failed split is the next one), when that attempt was
    # submitted (by a retry; else `created_at`), the job id once it started.
    split_attempt: int = 1
    claimed_at: str | None = None
    split_job_id: str | None = None
    started_at: str | None = None  # the split job started
    finished_at: str | None = None  # the video reached a final state
    progress_at: str | None = None  # a local submit's last batch of chunk items written (the sweep's grace)
    open: bool = False  # in the open index: not settled, or counted again since
    steps: tuple[StepRecord, ...] = ()  # the per-video steps claimed so far, once every chunk is done

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> VideoItem:
        pk = str(item.get("pk", ""))
        if not pk.startswith(PK_PREFIX) or item.get("sk") != VIDEO_SK:
            raise MalformedItem(f"not a video item: pk={pk!r}")
        pipeline = item.get("pipeline")
        if not isinstance(pipeline, list):
            raise MalformedItem(f"video pipeline must be a list, got {pipeline!r}")
        state = _str(item.get("state"), "video state")
        if state not in STATES:
            raise MalformedItem(f"unknown video state {state!r}")
        steps = item.get("steps", [])
        if not isinstance(steps, list):
            raise MalformedItem(f"video steps must be a list, got {steps!r}")
        return cls(
            video_id=pk[len(PK_PREFIX) :],
            name=_str(item.get("name"), "video name"),
            source=_str(item.get("source"), "video source"),
            duration=_num(item.get("duration"), "duration"),
            fps=_num(item.get("fps"), "fps"),
            size=_int(item.get("size"), "size"),
            chunk_count=_int(item.get("chunk_count"), "chunk_count"),
            pipeline=tuple(str(p) for p in pipeline),
            created_at=_str(item.get("created_at"), "created_at"),
            state=state,
            options=plain(item.get("options") or {}),
            chunks_done=_int(item.get("chunks_done", 0), "chunks_done"),
            chunks_failed=_int(item.get("chunks_failed", 0), "chunks_failed"),
            error=_opt_str(item.get("error"), "video error"),
            split_attempt=_int(item.get("split_attempt", 1), "split_attempt"),
            claimed_at=_opt_str(item.get("claimed_at"), "claimed_at"),
            split_job_id=_opt_str(item.get("split_job_id"), "split_job_id"),
            started_at=_opt_str(item.get("started_at"), "started_at"),
            finished_at=_opt_str(item.get("finished_at"), "finished_at"),
            progress_at=_opt_str(item.get("progress_at"), "progress_at"),
            open=item.get(OPEN_INDEX) == OPEN_VIDEO,
            steps=tuple(StepRecord.from_item(s) for s in steps),
        )

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            **video_key(self.video_id),
            "video_id": self.video_id,
            "name": self.name,
            "source": self.source,
            "duration": self.duration,
            "fps": self.fps,
            "size": self.size,
            "chunk_count": self.chunk_count,
            "pipeline": list(self.pipeline),
            "created_at": self.created_at,
            "state": self.state,
            "options": dict(self.options),
            "chunks_done": self.chunks_done,
            "chunks_failed": self.chunks_failed,
        }
        if self.open or self.state in ACTIVE:
            item[OPEN_INDEX] = OPEN_VIDEO
        if self.error:
            item["error"] = self.error
        if self.split_attempt != 1:
            item["split_attempt"] = self.split_attempt
        for name in ("claimed_at", "split_job_id", "started_at", "finished_at", "progress_at"):
            if getattr(self, name) is not None:
                item[name] = getattr(self, name)
        if self.steps:
            item["steps"] = [s.to_item() for s in self.steps]
        return item
