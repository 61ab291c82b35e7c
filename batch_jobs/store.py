"""DynamoDB access for video and chunk items.

Every write is one conditional UpdateItem (or a conditional PutItem for a new item) on a path of the `steps` list, so
two writers never overwrite each other's fields; a failed condition is an answer (`None`/`False`), not an error. The
writes that touch a chunk and its video together (counting a finished chunk, taking a retry back) are one
TransactWriteItems, so a count is never lost or made twice.
Items travel as plain Python through boto3's TypeSerializer/TypeDeserializer.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from batch_jobs import schema
from batch_jobs.errors import PipelineError
from batch_jobs.schema import ChunkItem, ResultRef, VideoItem

_RESERVED = (
    "state",
    "error",
    "result",
    "metrics",
    "duration",
    "source",
    "open",
)  # DynamoDB reserved words used as attribute names
# Twice a stream invocation's timeout (60 s): a submitter holding the lease is dead once it runs out.
SUBMIT_LEASE_SECONDS = 120.0
_CONFLICT_TRIES = 10  # a transaction that keeps meeting others on one item, ~5 s of jittered pauses
_TRANSACTION_ITEMS = 100  # DynamoDB's limit of actions in one TransactWriteItems
_BATCH_GET_KEYS = 100  # and of keys in one BatchGetItem
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def now_iso() -> str:
    return iso(datetime.now(UTC))


def iso(when: datetime) -> str:
    """The one format of the table's times: UTC to the millisecond, so that strings compare as times."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def _to_dynamo(value: Any) -> Any:
    """TypeSerializer rejects floats: send them as Decimals of their shortest repr."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _split_is(attempt: int) -> str:
    """Condition: the video's split is at `attempt` (`:a`); items written before a retry have no `split_attempt`."""
    return "(attribute_not_exists(split_attempt) OR split_attempt = :a)" if attempt == 1 else "split_attempt = :a"


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


@dataclass(frozen=True)
class Lease:
    """Who submits a step's job, and until when: a holder past `until` is taken for dead. The router's owner is
    the stream record it handles (a redelivery of that record after a crash goes on under the same lease)."""

    owner: str
    now: datetime
    seconds: float = SUBMIT_LEASE_SECONDS

    @classmethod
    def fresh(cls, who: str) -> Lease:
        """A lease of its own for a submitter that is not a stream record (the sweep, a submit, a job)."""
        return cls(f"{who}-{uuid.uuid4()}", datetime.now(UTC))

    @property
    def until(self) -> str:
        return iso(self.now + timedelta(seconds=self.seconds))

    def held_by_another(self, step: schema.StepRecord) -> bool:
        live = step.submitting_until is not None and step.submitting_until > iso(self.now)
        return live and step.submitting_by != self.owner


@dataclass(frozen=True)
class Conflict:
    """A conditional write that lost: the item as it is now (None when the item does not exist)."""

    item: dict[str, Any] | None


class Store:
    """One table; methods named after the transitions of `schema.TRANSITIONS`."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    # -- low level ----------------------------------------------------------------------------------------------
    def _names(self, text: str) -> dict[str, str]:
        """The reserved words this expression spells `#word` (names it does not use are an error in DynamoDB)."""
        return {f"#{w}": w for w in _RESERVED if f"#{w}" in text}

    def _update(
        self, key: Mapping[str, str], update: str, condition: str, values: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | Conflict:
        """Conditional update returning the new item, or `Conflict` with the current item when the condition fails."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "Key": serialize(key),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if names := self._names(update + condition):
            params["ExpressionAttributeNames"] = names
        if values:
            params["ExpressionAttributeValues"] = serialize(values)
        try:
            return deserialize(self.client.update_item(**params)["Attributes"])
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            old = exc.response.get("Item")
            return Conflict(deserialize(old) if old else None)

    def _op(self, key: Mapping[str, str], update: str, condition: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """One conditional update of a TransactWriteItems."""
        op: dict[str, Any] = {
            "TableName": self.table,
            "Key": serialize(key),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": serialize(values),
        }
        if names := self._names(update + condition):
            op["ExpressionAttributeNames"] = names
        return {"Update": op}

    def _transact(self, ops: list[dict[str, Any]]) -> list[str] | None:
        """Write all or nothing: None when written, else each op's cancellation code (`None` for ops that passed).

        Many chunks finishing at once all add to their video's counters, and DynamoDB cancels a transaction that
        meets another one on the same item (`TransactionConflict`): those are tried again after a jittered pause.
        """
        for attempt in range(_CONFLICT_TRIES):
            try:
                self.client.transact_write_items(TransactItems=ops)
            except self.client.exceptions.TransactionCanceledException as exc:
                reasons = exc.response.get("CancellationReasons") or []
                codes = [r.get("Code") for r in reasons]
                if "TransactionConflict" in codes and attempt + 1 < _CONFLICT_TRIES:
                    time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))
                    continue
                if not codes or any(c not in (None, "None", "ConditionalCheckFailed") for c in codes):
                    raise PipelineError(f"transaction refused: {codes or exc}") from None
                return [c if c == "ConditionalCheckFailed" else "None" for c in codes]
            return None
        raise AssertionError("unreachable")

    def _put_new(self, item: Mapping[str, Any]) -> None:
        try:
            self.client.put_item(
                TableName=self.table, Item=serialize(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise PipelineError(f"item already exists: {item['pk']} {item['sk']}") from None

    def _get(self, key: Mapping[str, str]) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table, Key=serialize(key), ConsistentRead=True)
        return deserialize(response["Item"]) if "Item" in response else None

    # -- reads --------------------------------------------------------------------------------------------------
    def get_video(self, video_id: str) -> VideoItem:
        item = self._get(schema.video_key(video_id))
        if item is None:
            raise PipelineError(f"no video {video_id!r}")
        return VideoItem.from_item(item)

    def get_chunk(self, video_id: str, index: int) -> ChunkItem:
        item = self._get(schema.chunk_key(video_id, index))
        if item is None:
            raise PipelineError(f"no chunk {index} of video {video_id!r}")
        return ChunkItem.from_item(item)

    def chunk_items(self, video_id: str) -> list[dict[str, Any]]:
        """Raw chunk items of a video, in index order (raw so a malformed one can still be shown)."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": serialize({":pk": schema.video_pk(video_id), ":prefix": schema.CHUNK_PREFIX}),
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**params)
            items.extend(deserialize(i) for i in response["Items"])
            if "LastEvaluatedKey" not in response:
                return items
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def chunks(self, video_id: str) -> list[ChunkItem]:
        return [ChunkItem.from_item(i) for i in self.chunk_items(video_id)]

    def video_items(self) -> Iterator[dict[str, Any]]:
        """Raw video items (raw so a malformed one can still be shown or skipped)."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :sk",
            "ExpressionAttributeValues": serialize({":sk": schema.VIDEO_SK}),
        }
        while True:
            response = self.client.scan(**params)
            yield from (deserialize(item) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def open_items(self, kind: str) -> Iterator[dict[str, Any]]:
        """Raw items in the open index (`schema.OPEN_CHUNK` or `schema.OPEN_VIDEO`), a page of keys at a time, each
        read back consistently: the index holds keys only, so a step's progress never writes to it."""
        params: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": schema.OPEN_INDEX,
            "KeyConditionExpression": "#open = :kind",
            "ExpressionAttributeNames": {"#open": schema.OPEN_INDEX},
            "ExpressionAttributeValues": serialize({":kind": kind}),
        }
        while True:
            response = self.client.query(**params)
            keys = [{"pk": k["pk"], "sk": k["sk"]} for k in response["Items"]]
            for start in range(0, len(keys), _BATCH_GET_KEYS):
                # an item that left the index since the page was read is no longer open
                yield from (
                    i for i in self._get_many(keys[start : start + _BATCH_GET_KEYS]) if i.get(schema.OPEN_INDEX)
                )
            if "LastEvaluatedKey" not in response:
                return
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _get_many(self, keys: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            yield from (deserialize(item) for item in response["Responses"].get(self.table, []))
            request = response.get("UnprocessedKeys") or {}

    def leave_open_index(self, video_id: str) -> None:
        """A settled video that a late count put back in the open index leaves it (nothing there to repair)."""
        self._update(
            schema.video_key(video_id),
            "REMOVE #open",
            "#state IN (:done, :failed, :cancelled)",
            {":done": schema.DONE, ":failed": schema.FAILED, ":cancelled": schema.CANCELLED},
        )

    def videos(self) -> Iterator[VideoItem]:
        return (VideoItem.from_item(item) for item in self.video_items())

    # -- creation -----------------------------------------------------------------------------------------------
    def put_video_once(self, video: VideoItem) -> bool:
        """Create the video item unless its id is taken: True if written."""
        try:
            self._put_new(video.to_item())
        except PipelineError:
            return False
        return True

    def mark_progress(self, video_id: str) -> bool:
        """A local submit is still at work (uploading): False once its video is no longer `submitted`."""
        marked = self._update(
            schema.video_key(video_id),
            "SET progress_at = :now",
            "#state = :sub",
            {":now": now_iso(), ":sub": schema.SUBMITTED},
        )
        return not isinstance(marked, Conflict)

    def put_chunk(self, chunk: ChunkItem) -> None:
        self._put_new(chunk.to_item())

    def put_chunks_once(self, chunks: Sequence[ChunkItem]) -> None:
        """Write an S3 split's chunk items, 100 per transaction; a batch that a re-run split job wrote before (in
        part) is written item by item, each unless it exists."""
        for start in range(0, len(chunks), _TRANSACTION_ITEMS):
            batch = chunks[start : start + _TRANSACTION_ITEMS]
            if self._transact([self._new(chunk.to_item()) for chunk in batch]) is not None:
                for chunk in batch:
                    self.put_chunk_once(chunk)

    def _new(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A conditional put of a new item, as one action of a TransactWriteItems."""
        put = {"TableName": self.table, "Item": serialize(item), "ConditionExpression": "attribute_not_exists(pk)"}
        return {"Put": put}

    def put_chunk_once(self, chunk: ChunkItem) -> bool:
        """Write a chunk item unless it exists (a re-run split job writes the same chunks): True if written."""
        try:
            self._put_new(chunk.to_item())
        except PipelineError:
            return False
        return True

    # -- step transitions ---------------------------------------------------------------------------------------
    def claim_next(self, chunk: ChunkItem, step: str, lease: Lease) -> dict[str, Any] | Conflict:
        """Append `{step, submitted, attempt 1}` if the last step is still the `done` one we saw: the claim, made
        with the lease on submitting its job (the claimer submits at once)."""
        n = len(chunk.steps)
        record = schema.StepRecord(
            step=step,
            state=schema.SUBMITTED,
            claimed_at=now_iso(),
            submitting_until=lease.until,
            submitting_by=lease.owner,
        ).to_item()
        return self._update(
            schema.chunk_key(chunk.video_id, chunk.index),
            "SET steps = list_append(steps, :new)",
            f"attribute_exists(steps) AND size(steps) = :n AND steps[{n - 1}].#state = :done"
            " AND attribute_not_exists(cancelled)",
            {":new": [record], ":n": n, ":done": schema.DONE},
        )

    def lease_submit(self, video_id: str, index: int | None, pos: int, attempt: int, lease: Lease) -> bool:
        """Take (or renew) the lease on submitting the job of step `pos` (of chunk `index`, or with None of the
        video's own steps), a `submitted` attempt without a job id: True if taken, False while another submitter
        holds a live one. Without it the stream and the sweep could both miss the other's job in ListJobs (which lags
        behind SubmitJob) and both submit."""
        p = f"steps[{pos}]"
        taken = self._update(
            schema.steps_key(video_id, index),
            f"SET {p}.submitting_until = :until, {p}.submitting_by = :me",
            f"{p}.#state = :sub AND {p}.attempt = :a AND attribute_not_exists({p}.job_id)"
            f" AND attribute_not_exists(cancelled) AND (attribute_not_exists({p}.submitting_until)"
            f" OR {p}.submitting_until < :now OR {p}.submitting_by = :me)",
            {
                ":until": lease.until,
                ":me": lease.owner,
                ":now": iso(lease.now),
                ":sub": schema.SUBMITTED,
                ":a": attempt,
            },
        )
        return not isinstance(taken, Conflict)

    def record_job(
        self, video_id: str, index: int | None, pos: int, attempt: int, job_id: str
    ) -> dict[str, Any] | Conflict:
        """Record the submitted job's id if none is recorded for this attempt (a replay writes nothing: DynamoDB
        emits no stream record for it). On `Conflict`, compare the recorded id with yours."""
        p = f"steps[{pos}]"
        return self._update(
            schema.steps_key(video_id, index),
            f"SET {p}.job_id = :job",
            f"{p}.attempt = :a AND attribute_not_exists({p}.job_id) AND {p}.#state = :sub",
            {":job": job_id, ":a": attempt, ":sub": schema.SUBMITTED},
        )

    def mark_running(
        self, video_id: str, index: int | None, pos: int, attempt: int, job_id: str
    ) -> dict[str, Any] | Conflict:
        """The job's fencing check and start in one write: only the recorded (or first) job of this attempt runs.
        The same job may re-enter a step it left `running`: Batch retries an interrupted job (a spot reclaim, `Host
        EC2*`) under the same `AWS_BATCH_JOB_ID`, and that retry must do the work, not be fenced out by itself."""
        p = f"steps[{pos}]"
        return self._update(
            schema.steps_key(video_id, index),
            f"SET {p}.#state = :run, {p}.job_id = :job, {p}.started_at = :now",
            f"{p}.attempt = :a AND attribute_not_exists(cancelled)"
            f" AND (({p}.#state = :sub AND (attribute_not_exists({p}.job_id) OR {p}.job_id = :job))"
            f" OR ({p}.#state = :run AND {p}.job_id = :job))",
            {":run": schema.RUNNING, ":job": job_id, ":now": now_iso(), ":a": attempt, ":sub": schema.SUBMITTED},
        )

    def mark_done(
        self, video_id: str, index: int | None, pos: int, job_id: str, result: ResultRef, metrics: Mapping[str, Any]
    ) -> dict[str, Any] | Conflict:
        p = f"steps[{pos}]"
        return self._update(
            schema.steps_key(video_id, index),
            f"SET {p}.#state = :done, {p}.finished_at = :now, {p}.#result = :result, {p}.#metrics = :metrics",
            f"{p}.job_id = :job AND {p}.#state = :run",
            {
                ":done": schema.DONE,
                ":now": now_iso(),
                ":result": {"bucket": result.bucket, "key": result.key},
                ":metrics": dict(metrics),
                ":job": job_id,
                ":run": schema.RUNNING,
            },
        )

    def mark_failed(
        self, video_id: str, index: int | None, pos: int, reason: str, job_id: str | None, attempt: int | None = None
    ) -> dict[str, Any] | Conflict:
        """Fail an active step if `job_id` is the recorded job; with `attempt`, also if no job id is recorded yet
        (a Batch event can arrive before the router recorded the id). A stale job cannot fail a newer attempt.
        With no `job_id` (SubmitJob refused for good), only a `submitted` step of `attempt` without a job fails."""
        p = f"steps[{pos}]"
        values: dict[str, Any] = {
            ":failed": schema.FAILED,
            ":now": now_iso(),
            ":reason": reason,
            ":sub": schema.SUBMITTED,
            ":run": schema.RUNNING,
        }
        update = f"SET {p}.#state = :failed, {p}.finished_at = :now, {p}.#error = :reason"
        if job_id is None:
            if attempt is None:
                raise ValueError("failing a step without a job id needs its attempt")
            condition = f"{p}.#state = :sub AND attribute_not_exists({p}.job_id) AND {p}.attempt = :a"
            del values[":run"]
        else:
            update += f", {p}.job_id = :job"
            values[":job"] = job_id
            condition = f"{p}.#state IN (:sub, :run) AND ({p}.job_id = :job"
            condition += ")" if attempt is None else f" OR attribute_not_exists({p}.job_id)) AND {p}.attempt = :a"
        if attempt is not None:
            values[":a"] = attempt
        return self._update(schema.steps_key(video_id, index), update, condition, values)

    def claim_video_step(self, video: VideoItem, step: str, lease: Lease) -> dict[str, Any] | Conflict:
        """Append `{step, submitted, attempt 1}` to the video's own steps once every chunk is done, if its last step
        is still the `done` one we saw (or it has none yet), with the lease on submitting its job (the claimer
        submits at once). A video failed meanwhile runs again: only a retry of its chunks gets every one done."""
        n = len(video.steps)
        record = schema.StepRecord(
            step=step,
            state=schema.SUBMITTED,
            claimed_at=now_iso(),
            submitting_until=lease.until,
            submitting_by=lease.owner,
        ).to_item()
        after = "attribute_not_exists(steps)" if n == 0 else f"size(steps) = :n AND steps[{n - 1}].#state = :done"
        values: dict[str, Any] = {
            ":new": [record],
            ":none": [],
            ":running": schema.RUNNING,
            ":failed": schema.FAILED,
            ":count": video.chunk_count,
            ":zero": 0,
            ":video": schema.OPEN_VIDEO,
        }
        if n:
            values.update({":n": n, ":done": schema.DONE})
        return self._update(
            schema.video_key(video.video_id),
            "SET steps = list_append(if_not_exists(steps, :none), :new), #state = :running, #open = :video"
            " REMOVE #error, finished_at",
            f"#state IN (:running, :failed) AND chunks_done = :count AND chunks_failed = :zero AND {after}",
            values,
        )

    def retry_video_step(self, video: VideoItem, lease: Lease) -> dict[str, Any] | Conflict:
        """A failed video's failed last per-video step -> submitted with the next attempt, under the lease on
        submitting its job (the caller submits it), and the video runs again, in one write."""
        p, attempt = f"steps[{len(video.steps) - 1}]", video.steps[-1].attempt
        return self._update(
            schema.video_key(video.video_id),
            f"SET {p}.#state = :sub, {p}.attempt = :next, {p}.claimed_at = :now, {p}.submitting_until = :until,"
            f" {p}.submitting_by = :me, #state = :running, #open = :video"
            f" REMOVE {p}.job_id, {p}.#error, {p}.started_at, {p}.finished_at, {p}.#result, {p}.#metrics, #error,"
            " finished_at",
            f"#state = :failed AND {p}.#state = :failed AND {p}.attempt = :a",
            {
                ":sub": schema.SUBMITTED,
                ":next": attempt + 1,
                ":now": now_iso(),
                ":running": schema.RUNNING,
                ":video": schema.OPEN_VIDEO,
                ":failed": schema.FAILED,
                ":a": attempt,
                ":until": lease.until,
                ":me": lease.owner,
            },
        )

    def retry(self, chunk: ChunkItem) -> bool:
        """Its failed last step -> submitted with the next attempt; the router sees the claim and submits a new job.
        The chunk rejoins the open index, and a failure its video counted is taken off the count in the same
        transaction. True if retried (False: it was not failed as read, or was cancelled meanwhile)."""
        p, attempt = f"steps[{len(chunk.steps) - 1}]", chunk.last.attempt
        condition = f"{p}.#state = :failed AND {p}.attempt = :a AND attribute_not_exists(cancelled) AND "
        condition += "attribute_not_exists(counted)" if chunk.counted is None else "counted = :counted"
        values: dict[str, Any] = {
            ":sub": schema.SUBMITTED,
            ":next": attempt + 1,
            ":failed": schema.FAILED,
            ":a": attempt,
            ":now": now_iso(),
            ":chunk": schema.OPEN_CHUNK,
        }
        if chunk.counted is not None:
            values[":counted"] = chunk.counted
        ops = [
            self._op(
                schema.chunk_key(chunk.video_id, chunk.index),
                f"SET {p}.#state = :sub, {p}.attempt = :next, {p}.claimed_at = :now, #open = :chunk"
                f" REMOVE counted, {p}.job_id, {p}.submitting_until, {p}.submitting_by, {p}.#error, {p}.started_at,"
                f" {p}.finished_at, {p}.#result, {p}.#metrics",
                condition,
                values,
            )
        ]
        if chunk.counted is not None:
            ops.append(
                self._op(
                    schema.video_key(chunk.video_id),
                    f"ADD chunks_{chunk.counted} :minus",
                    "attribute_exists(pk)",
                    {":minus": -1},
                )
            )
        return self._transact(ops) is None

    def flag_cancelled(self, video_id: str, index: int) -> dict[str, Any] | Conflict:
        """Stops further claims on the chunk (every claim checks the flag)."""
        return self._update(
            schema.chunk_key(video_id, index), "SET cancelled = :t", "attribute_exists(pk)", {":t": True}
        )

    def mark_cancelled(self, video_id: str, index: int | None, pos: int) -> dict[str, Any] | Conflict:
        p = f"steps[{pos}]"
        return self._update(
            schema.steps_key(video_id, index),
            f"SET {p}.#state = :cancelled, {p}.finished_at = :now",
            f"{p}.#state IN (:sub, :run)",
            {":cancelled": schema.CANCELLED, ":now": now_iso(), ":sub": schema.SUBMITTED, ":run": schema.RUNNING},
        )

    def record_item_error(self, key: Mapping[str, str], reason: str) -> dict[str, Any] | Conflict:
        """Mark an item the router cannot process; once, so the resulting stream record is not handled again."""
        return self._update(
            key, "SET #error = :reason", "attribute_exists(pk) AND attribute_not_exists(#error)", {":reason": reason}
        )

    # -- video --------------------------------------------------------------------------------------------------
    def finish_chunk(self, video_id: str, index: int, ok: bool) -> dict[str, Any] | None:
        """Count the chunk once on its video as done or failed: the chunk's `counted` mark and the video's counter
        change in one transaction, so a replayed record counts nothing twice. A chunk counted the other way (a stale
        failure counted after a retry reopened it) moves from one counter to the other. The chunk leaves the open
        index; the video joins it, so a crash before its settle leaves it to the sweep. Returns the video item as it
        is now, or None when the chunk or the video item does not exist."""
        state, other = (schema.DONE, schema.FAILED) if ok else (schema.FAILED, schema.DONE)
        seen: str | None = None
        for _ in range(3):
            chunk_condition = "attribute_exists(pk) AND " + (
                "attribute_not_exists(counted)" if seen is None else "counted = :seen"
            )
            values: dict[str, Any] = {":state": state}
            if seen is not None:
                values[":seen"] = seen
            video_update = f"ADD chunks_{state} :one SET #open = :video"
            video_values: dict[str, Any] = {":one": 1, ":video": schema.OPEN_VIDEO}
            if seen == other:
                video_update = f"ADD chunks_{state} :one, chunks_{other} :minus SET #open = :video"
                video_values[":minus"] = -1
            reasons = self._transact(
                [
                    self._op(
                        schema.chunk_key(video_id, index), "SET counted = :state REMOVE #open", chunk_condition, values
                    ),
                    self._op(schema.video_key(video_id), video_update, "attribute_exists(pk)", video_values),
                ]
            )
            if reasons is None:
                return self._get(schema.video_key(video_id))
            if reasons[1] == "ConditionalCheckFailed":
                return None
            chunk = self._get(schema.chunk_key(video_id, index))
            if chunk is None:
                return None
            seen = chunk.get("counted")
            if seen == state:
                return self._get(schema.video_key(video_id))  # a replay: counted already
        raise PipelineError(f"cannot count chunk {index} of video {video_id}: its mark keeps changing")

    def reopen_video(self, video_id: str) -> dict[str, Any] | Conflict:
        """A failed video runs again once one of its chunks is retried (a cancelled one stays cancelled)."""
        return self._update(
            schema.video_key(video_id),
            "SET #state = :running, #open = :video REMOVE #error, finished_at",
            "#state IN (:running, :failed)",
            {":running": schema.RUNNING, ":failed": schema.FAILED, ":video": schema.OPEN_VIDEO},
        )

    def settle_video(self, video: VideoItem, state: str, error: str | None) -> dict[str, Any] | Conflict:
        """A running (or failed, then retried) video reaches `state` and leaves the open index, if its counts and its
        per-video steps are still those it was decided on: a settle that lost a race with a later count, a claim or a
        retry writes nothing."""
        values: dict[str, Any] = {
            ":state": state,
            ":now": now_iso(),
            ":running": schema.RUNNING,
            ":failed": schema.FAILED,
            ":done_n": video.chunks_done,
            ":failed_n": video.chunks_failed,
        }
        update = "SET #state = :state, finished_at = :now" + (", #error = :error" if error else "")
        update += " REMOVE #open" + ("" if error else ", #error")
        if error:
            values[":error"] = error
        condition = "#state IN (:running, :failed) AND chunks_done = :done_n AND chunks_failed = :failed_n AND "
        if video.steps:  # and its per-video steps: a retry of the last one reopened it
            p = f"steps[{len(video.steps) - 1}]"
            condition += f"size(steps) = :steps_n AND {p}.#state = :last AND {p}.attempt = :a"
            values.update({":steps_n": len(video.steps), ":last": video.steps[-1].state, ":a": video.steps[-1].attempt})
        else:
            condition += "attribute_not_exists(steps)"
        return self._update(schema.video_key(video.video_id), update, condition, values)

    def put_chunks(self, video_id: str, chunks: Sequence[ChunkItem]) -> bool:
        """Write a local submit's chunk items, up to 99 per transaction, each with a progress mark on its `submitted`
        video (so the sweep's grace counts from the last progress, and its failing an interrupted submit is
        conditional on that mark). False, writing nothing more, once the video is no longer `submitted`."""
        for start in range(0, len(chunks), _TRANSACTION_ITEMS - 1):
            batch = chunks[start : start + _TRANSACTION_ITEMS - 1]
            writes = [self._new(chunk.to_item()) for chunk in batch]
            progress = {":now": now_iso(), ":sub": schema.SUBMITTED}
            writes.append(self._op(schema.video_key(video_id), "SET progress_at = :now", "#state = :sub", progress))
            reasons = self._transact(writes)
            if reasons is not None and reasons[-1] == "ConditionalCheckFailed":
                return False  # the video was failed (an interrupted submit, said the sweep) or cancelled
            if reasons is not None:
                raise PipelineError(f"cannot write chunk items of video {video_id}: an item exists ({reasons})")
        return True

    def start_video(self, video_id: str) -> dict[str, Any] | Conflict:
        """A local submit's video runs once all its chunk items are written (until then it is `submitted`)."""
        return self._update(
            schema.video_key(video_id),
            "SET #state = :running",
            "#state = :sub AND attribute_not_exists(split_job_id)",
            {":running": schema.RUNNING, ":sub": schema.SUBMITTED},
        )

    def start_split(self, video_id: str, job_id: str, attempt: int) -> dict[str, Any] | Conflict:
        """The split job's fencing check: only the first (or the recorded) job of this attempt splits a `submitted`
        video (a job of an attempt before a `retry` never does)."""
        return self._update(
            schema.video_key(video_id),
            "SET split_job_id = :job, started_at = :now",
            f"#state = :sub AND (attribute_not_exists(split_job_id) OR split_job_id = :job) AND {_split_is(attempt)}",
            {":job": job_id, ":now": now_iso(), ":sub": schema.SUBMITTED, ":a": attempt},
        )

    def finish_split(self, video_id: str, job_id: str, fields: Mapping[str, Any]) -> dict[str, Any] | Conflict:
        """The split job's result: the source's properties and chunk count; the video runs from now on."""
        names = sorted(fields)
        sets = ", ".join(f"{'#' if name in _RESERVED else ''}{name} = :{name}" for name in names)
        return self._update(
            schema.video_key(video_id),
            f"SET #state = :running, {sets}",
            "#state = :sub AND split_job_id = :job",
            {
                ":running": schema.RUNNING,
                ":sub": schema.SUBMITTED,
                ":job": job_id,
                **{f":{n}": fields[n] for n in names},
            },
        )

    def fail_split(self, video_id: str, job_id: str | None, reason: str, attempt: int) -> dict[str, Any] | Conflict:
        """A split of this attempt that failed, or whose job ended without splitting (or, with no `job_id`, was never
        submitted and never started): the video fails with the reason."""
        values = {
            ":failed": schema.FAILED,
            ":reason": reason,
            ":now": now_iso(),
            ":sub": schema.SUBMITTED,
            ":a": attempt,
        }
        update = "SET #state = :failed, #error = :reason, finished_at = :now"
        owner = "attribute_not_exists(split_job_id)"
        if job_id is not None:
            update, owner = update + ", split_job_id = :job", f"({owner} OR split_job_id = :job)"
            values[":job"] = job_id
        update += " REMOVE #open"
        return self._update(
            schema.video_key(video_id), update, f"#state = :sub AND {owner} AND {_split_is(attempt)}", values
        )

    def retry_split(self, video_id: str, attempt: int) -> dict[str, Any] | Conflict:
        """failed -> submitted with the next split attempt, for an S3 video whose split never finished (no chunk
        count); the caller submits the new attempt's job."""
        return self._update(
            schema.video_key(video_id),
            "SET #state = :sub, split_attempt = :next, claimed_at = :now, #open = :video"
            " REMOVE split_job_id, #error, started_at, finished_at",
            f"#state = :failed AND chunk_count = :zero AND begins_with(#source, :s3) AND {_split_is(attempt)}",
            {
                ":sub": schema.SUBMITTED,
                ":next": attempt + 1,
                ":now": now_iso(),
                ":failed": schema.FAILED,
                ":zero": 0,
                ":s3": "s3://",
                ":a": attempt,
                ":video": schema.OPEN_VIDEO,
            },
        )

    def set_video_state(self, video_id: str, state: str, error: str | None = None) -> dict[str, Any] | Conflict:
        update = "SET #state = :state, finished_at = :now" + (", #error = :error" if error else "")
        update += " REMOVE #open" + ("" if error else ", #error")
        values: dict[str, Any] = {":state": state, ":now": now_iso()}
        if error:
            values[":error"] = error
        values.update({":sub": schema.SUBMITTED, ":running": schema.RUNNING})
        return self._update(schema.video_key(video_id), update, "#state IN (:sub, :running)", values)

    def fail_interrupted(self, video: VideoItem, reason: str) -> dict[str, Any] | Conflict:
        """The sweep fails a local submit's video that made no progress since it looked (its `progress_at`): a
        submit that wrote more chunk items meanwhile is healthy, only slow."""
        values: dict[str, Any] = {
            ":failed": schema.FAILED,
            ":now": now_iso(),
            ":reason": reason,
            ":sub": schema.SUBMITTED,
        }
        condition = "#state = :sub AND "
        if video.progress_at is None:
            condition += "attribute_not_exists(progress_at)"
        else:
            condition += "progress_at = :seen"
            values[":seen"] = video.progress_at
        return self._update(
            schema.video_key(video.video_id),
            "SET #state = :failed, #error = :reason, finished_at = :now REMOVE #open",
            condition,
            values,
        )
