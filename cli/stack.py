"""Which stack a pipeline command talks to, and its clients: one function, `open_stack`, used by every command.

The choice between a deployed stack and the embedded local stack is `cli.local.session.local_or_deployed`'s
(`--stack`/`DERBY_BATCH_STACK` decide when given; otherwise a deployed config that answers wins, else local).
"""

from __future__ import annotations

import os

import boto3

from batch_jobs.errors import PipelineError
from batch_jobs.stack import Stack, connect


def open_stack(explicit: str | None = None) -> Stack:
    """The stack for this command: `--stack`, else `DERBY_BATCH_STACK`, else deployed `derby` or the local stack."""
    from cli.local.session import local_or_deployed

    name = local_or_deployed(explicit)
    session = boto3.Session(region_name=os.environ.get("AWS_REGION"))
    if session.region_name is None:
        raise PipelineError(f"stack {name!r}: no AWS region configured (set AWS_REGION or a profile's region)")
    return connect(session, name)
