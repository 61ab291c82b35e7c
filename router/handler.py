"""The router Lambda: DynamoDB stream batches of chunk items, EventBridge Batch job state changes, and a schedule.

Stream batches go through Powertools' `AsyncBatchProcessor` with partial batch responses (`ReportBatchItemFailures`):
each record is handled alone, a failing one is reported by sequence number and retried without blocking the others.
Records of different chunks are handled at once on `ROUTER_THREADS` threads (all the chunks of a video share its
partition key, so the mapping's ParallelizationFactor alone would route a video's chunks one after another); the
records of one chunk keep their order. Order is a courtesy, not a guarantee the router needs: every write is
conditional, and the simulation delivers records duplicated, late and concurrently.
Items that can never be processed are recorded as errors, not raised, so they do not retry forever.
A scheduled EventBridge event runs the sweep, which repairs what a lost record or event left behind.
The router never imports TensorFlow or the detector (it ships as a small zip).
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)

from batch_jobs.config import stack_name
from batch_jobs.schema import is_chunk_item
from router.core import Router
from router.events import is_batch_event, is_scheduled_event, parse_job_state_change
from router.sweep import BUDGET_SECONDS, Budget, sweep

SWEEP_MARGIN_SECONDS = 20.0
THREADS_ENV = "DERBY_ROUTER_THREADS"  # 1 handles records on the invoking thread (the simulation schedules its calls)
DEFAULT_THREADS = 32

_router: Router | None = None
_pools: dict[int, ThreadPoolExecutor] = {}  # by size: one per process, reused by every invocation


def get_router() -> Router:
    """The router of this process, built on first use from the environment (stack name, botocore settings)."""
    global _router
    if _router is None:
        _router = Router.from_session(boto3.Session(region_name=os.environ.get("AWS_REGION")), stack_name())
    return _router


def set_router(router: Router | None) -> None:
    """Use this router (or, with None, build a fresh one on the next event): for a changed stack config."""
    global _router
    _router = router


def router_threads() -> int:
    return max(1, int(os.environ.get(THREADS_ENV) or DEFAULT_THREADS))


def _record_handler(record: DynamoDBRecord) -> None:
    if record.event_name == DynamoDBRecordEventName.REMOVE or record.dynamodb is None:
        return
    new = record.dynamodb.new_image
    if not is_chunk_item(new):
        return
    get_router().on_chunk_change(new, record.dynamodb.old_image or None, record.event_id or "")


def _in_chunk_order(threads: int) -> Callable[[DynamoDBRecord], Any]:
    """An async record handler for one batch: one chunk's records one after another (a lock per item key, taken in
    the batch's order), different chunks on the thread pool."""
    pool = None
    if threads > 1:
        pool = _pools.get(threads) or _pools.setdefault(threads, ThreadPoolExecutor(threads, "router"))
    locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    async def handle(record: DynamoDBRecord) -> None:
        keys = (record.dynamodb.keys if record.dynamodb else None) or {}
        async with locks[(str(keys.get("pk")), str(keys.get("sk")))]:
            if threads == 1:
                _record_handler(record)
            else:
                await asyncio.get_running_loop().run_in_executor(pool, _record_handler, record)

    return handle


def _sweep_budget(context: Any) -> Budget:
    """The invocation's remaining time, less a margin to report in; the default budget without a Lambda context."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return Budget(BUDGET_SECONDS)
    return Budget(max(1.0, remaining() / 1000 - SWEEP_MARGIN_SECONDS))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_batch_event(event):
        change = parse_job_state_change(event)
        if change is not None:
            get_router().on_job_state_change(change)
        return {}
    if is_scheduled_event(event):
        return asdict(sweep(get_router(), budget=_sweep_budget(context)))
    get_router()  # built once, before the threads share it
    processor = AsyncBatchProcessor(event_type=EventType.DynamoDBStreams)
    handle = _in_chunk_order(router_threads())
    response = async_process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
    return dict(response)
