"""The context object Lambda passes the router, and the crash of an invocation: the router's Lambda as the local
stack, the tests and the simulation run it in-process."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class LambdaContext:
    """The attributes Powertools and the handler read; a fresh request id per invocation, 60 s to run."""

    function_name: str = "derby-local-router"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:derby-local-router"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/derby-local-router"
    log_stream_name: str = "local"
    deadline: float = field(default_factory=lambda: time.monotonic() + 60)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class InvocationCrash(BaseException):
    """The invocation died (timeout, out of memory, a killed sandbox): raised from anywhere inside the handler, e.g. a
    botocore hook. Not an `Exception`, so Powertools cannot catch it per record: the whole batch fails, and the stream
    delivers it again, as Lambda retries a crashed invocation."""
