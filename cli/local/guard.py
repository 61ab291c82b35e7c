"""Exec a job command so that it dies with the stack: `python -m cli.local.guard PARENT_PID ARMED_FD CMD...`.

Job processes run in their own session (a Ctrl-C in the terminal is the stack's to handle, not theirs); the parent
death signal makes sure a SIGKILLed stack leaves no job running behind it. A tiny exec wrapper instead of
`preexec_fn`, which is unsafe in a process with threads. `guarded_popen` starts one and returns only once the death
signal is armed: a pid handed out earlier could be stopped (SIGSTOP) before it arms, and then outlive the stack.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when `parent` exits (the thread of `parent` that started it, to be exact); exit at once
    if it already has. `parent` must be read before this process was started: read here, after a parent that died
    meanwhile, it would be the new parent's pid."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(137)


def guarded_popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """`Popen` of `argv` under the guard, dying with this process (the calling thread); returns once it is armed."""
    armed_r, armed_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.local.guard", str(os.getpid()), str(armed_w), *argv],
            pass_fds=(armed_w, *kwargs.pop("pass_fds", ())),
            **kwargs,
        )
    except BaseException:
        os.close(armed_r)
        raise
    finally:
        os.close(armed_w)
    try:
        os.read(armed_r, 1)  # EOF: the guard armed its death signal and closed its end (or died)
    finally:
        os.close(armed_r)
    return proc


def main(argv: list[str]) -> None:
    parent, armed, command = int(argv[0]), int(argv[1]), argv[2:]
    die_with_parent(parent)
    os.close(armed)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
