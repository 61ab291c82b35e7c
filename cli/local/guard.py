"""Exec a job command so that it dies with the stack: `python -m cli.local.guard PARENT_PID CMD...`.

Job processes run in their own session (a Ctrl-C in the terminal is the stack's to handle, not theirs); the parent
death signal makes sure a SIGKILLed stack leaves no job running behind it. A tiny exec wrapper instead of
`preexec_fn`, which is unsafe in a process with threads.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when `parent` exits (the thread of `parent` that started it, to be exact); exit at once
    if it already has."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(137)


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    die_with_parent(parent)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
