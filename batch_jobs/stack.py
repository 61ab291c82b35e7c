"""One deployed (or local) stack as the code uses it: its config and its clients, passed as one value instead of
`s3, store, batch, config` threaded through every call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batch_jobs.batch import BatchClient
from batch_jobs.config import StackConfig, load_config
from batch_jobs.store import Store


@dataclass(frozen=True)
class Stack:
    config: StackConfig
    store: Store
    batch: BatchClient
    s3: Any
    logs: Any  # CloudWatch Logs (`derby-batch logs`); None where nothing reads logs


def connect(session: Any, stack: str) -> Stack:
    """A stack's clients, in the region its config names (read from SSM)."""
    return with_config(session, load_config(session.client("ssm"), stack))


def with_config(session: Any, config: StackConfig) -> Stack:
    """A stack's clients for a config already in hand."""

    def client(name: str) -> Any:
        return session.client(name, region_name=config.region)

    return Stack(
        config, Store(client("dynamodb"), config.table), BatchClient(client("batch")), client("s3"), client("logs")
    )
