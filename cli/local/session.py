"""Which stack a CLI call talks to: a deployed one, or the embedded local stack (already running, or started here).

`local_or_deployed` is the one call the CLI's stack opener makes: it returns the stack name to open and, when that is
the local stack, has pointed this process's AWS settings at it. A local stack started here lives until the process
exits; at exit it first lets the work this command started finish (submit, retry), unless the user pressed Ctrl-C:
then running jobs stop and resume on the next start.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from batch_jobs.config import DEFAULT_STACK, STACK_ENV, parameter_name, stack_name
from cli.local.instance import find_running
from cli.local.paths import LocalPaths
from cli.local.runtime import LOCAL_STACK, LocalSettings, LocalStack, point_process_at
from cli.local.stream_poller import POLL_SECONDS

Announce = Callable[[str], None]
_started_here: LocalStack | None = None
IDLE_SETTLE_SECONDS = POLL_SECONDS + 0.3  # longer than the stream poller sleeps between polls


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def deployed_config_reachable() -> bool:
    """True when AWS credentials exist and the default stack's config parameter can be read (short timeouts)."""
    session = boto3.Session(region_name=os.environ.get("AWS_REGION"))  # botocore itself reads AWS_DEFAULT_REGION
    if session.get_credentials() is None or session.region_name is None:
        return False
    quick = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
    try:
        session.client("ssm", config=quick).get_parameter(Name=parameter_name(DEFAULT_STACK))
    except (ClientError, BotoCoreError):
        return False
    return True


def wants_local(explicit: str | None) -> bool:
    """`--stack`/`DERBY_BATCH_STACK` decide when given (`local` means local); else whether a deployed config answers."""
    chosen = explicit or os.environ.get(STACK_ENV)
    if chosen:
        return chosen == LOCAL_STACK
    return not deployed_config_reachable()


def local_or_deployed(explicit: str | None, announce: Announce = say) -> str:
    """The stack name to open; for the local stack, this process now talks to it (one line says which)."""
    if not wants_local(explicit):
        return stack_name(explicit)
    use_local_stack(LocalPaths.from_env(), announce)
    return LOCAL_STACK


def use_local_stack(paths: LocalPaths, announce: Announce = say) -> LocalStack | None:
    """Point this process at a running `local up`, or start the local stack here; returns the stack started here.

    A second call in the same process (a command that opens the stack twice) uses the stack the first one started.
    """
    global _started_here
    if _started_here is not None and _started_here.paths == paths.ensure():
        point_process_at(_started_here.endpoint)
        return _started_here
    running = find_running(paths)
    if running is not None:
        point_process_at(running.endpoint)
        announce(f"using the local stack at {running.endpoint} (`derby-batch local up`, pid {running.pid})")
        return None
    stack = LocalStack(LocalSettings(paths), log=announce)
    stack.start()
    _started_here = stack
    announce(f"no deployed stack configured: running the local stack in this process (state in {paths.root})")
    _InProcess(stack, announce).install()
    return stack


class _InProcess:
    """Stops a local stack started by this command when the process exits, after its work is done."""

    def __init__(self, stack: LocalStack, announce: Announce) -> None:
        self.stack, self.announce = stack, announce
        self.interrupted = False

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._on_interrupt)
        # Before threads are joined at exit, while the server thread still serves: at atexit time it no longer does.
        threading._register_atexit(self.close)  # type: ignore[attr-defined]

    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        raise KeyboardInterrupt

    def close(self) -> None:
        try:
            # The last writes may not have reached the stream poller or the executor yet: settle, then tell.
            if not self.interrupted and not wait_idle(self.stack, timeout=IDLE_SETTLE_SECONDS * 2):
                self.announce("waiting for the local jobs this command started (Ctrl-C stops; they resume next time)")
                wait_idle(self.stack)
        except KeyboardInterrupt:
            pass
        finally:
            self.stack.stop()


def wait_idle(stack: LocalStack, timeout: float | None = None, settle: float = IDLE_SETTLE_SECONDS) -> bool:
    """Wait until the stack has been idle for `settle` seconds in a row; False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    quiet_since: float | None = None
    while deadline is None or time.monotonic() < deadline:
        if stack.idle():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                return True
        else:
            quiet_since = None
        time.sleep(0.1)
    return False
