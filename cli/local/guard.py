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


def main(argv: list[str]) -> None:
    parent, command = int(argv[0]), argv[1:]
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the stack died before the signal was armed
        sys.exit(137)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
