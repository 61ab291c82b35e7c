"""Job processes forked from a warm interpreter: `python -m MODULE` without an interpreter start per job.

A job process started cold pays for its interpreter and imports before its first request: about 0.3 s of CPU for a
summarize job (boto3 and the job code; the whole job then took 0.5 s, now 0.25 s) and 0.6 s for a detect job (also
numpy, OpenCV, PyAV, LiteRT and the detector), on the same cores the detectors need. The local stack starts one
host; the host imports the job code once (`batch_jobs.actions.WARM_IMPORTS`, never TensorFlow) and forks a child per
job. The child takes the job's session, working directory, environment and output pipe, then runs MODULE as
`python -m` does (runpy), so a job runs the code and ends with the exit code it would have as a fresh process: what
differs is only that its imports are done, like a container whose image is already on the host. Commands of another
shape are exec'd by the executor as before.

`python -m cli.local.job_host FD MODULE...` is the host: requests arrive on the Unix seqpacket socket FD, one JSON
message each (argv, env, cwd) with the job's output pipe attached; it answers with the child's pid and, once the
child has exited, with its exit status. `JobHost` is the executor's end.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import queue
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cli.local.guard import die_with_parent, guarded_popen

MAX_MESSAGE = 1 << 20  # a request carries the job's whole environment
LOST = -int(signal.SIGKILL)  # the exit status of a job whose host went away: SIGKILL, by PR_SET_PDEATHSIG


def module_command(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """(module, arguments) of `python -m MODULE ARGS...`, the command a host can run; None for any other command."""
    if len(argv) >= 3 and Path(argv[0]).name in ("python", "python3") and argv[1] == "-m":
        return argv[2], list(argv[3:])
    return None


# ---- the host process ---------------------------------------------------------------------------------------------


def _exit_code(code: object) -> int:
    """The status `sys.exit(code)` gives a process: None is 0, an int itself, anything else is printed and 1."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def _unbuffered(fd: int, errors: str) -> io.TextIOWrapper:
    """A standard stream as `python -u` (the jobs' PYTHONUNBUFFERED=1) makes it: text written through to the fd."""
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding="utf-8", errors=errors, write_through=True)


def _run_job(request: dict[str, object], output: int, host: int, armed: int, inherited: Iterable[int]) -> None:
    """In the forked child: become the job's process, run its module, exit with its status. Never returns.

    `host` is the host's pid as the host read it before the fork: read here, after a host that died meanwhile, it
    would be the new parent's and the check in `die_with_parent` would pass. Closing `armed` tells the host that the
    death signal is set: only then does it hand out the pid, so whoever gets the pid (and may SIGSTOP it) holds a
    job that dies with the host."""
    code = 1
    try:
        os.setsid()  # its own session and process group, as a job the executor execs: killed as a group
        die_with_parent(host)
        os.close(armed)
        for fd in inherited:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(null)
        os.close(output)
        sys.stdout, sys.stderr = _unbuffered(1, "strict"), _unbuffered(2, "backslashreplace")
        cwd, env, argv = str(request["cwd"]), request["env"], request["argv"]
        assert isinstance(env, dict) and isinstance(argv, list)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        tempfile.tempdir = None  # found again from this job's TMPDIR
        module, args = module_command(argv) or ("", [])
        sys.argv = ["-m", *args]  # runpy puts the module's path first, as `python -m` does
        sys.path[0] = cwd
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reaped() -> list[tuple[int, int]]:
    """(pid, exit status as Popen.returncode gives it) of every child that has exited."""
    done: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append((pid, os.waitstatus_to_exitcode(status)))


def serve(sock: socket.socket, modules: Iterable[str]) -> None:
    """Import `modules`, then fork a job per request until the socket closes. Single-threaded: forking is safe."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the job then imports it itself, and reports what fails
            print(f"job host: cannot preload {name}: {exc}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a child's exit wakes the select through the wakeup fd
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj is not sock:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    continue
                message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
                if not message:
                    return  # the executor closed its end: the stack is stopping
                host = os.getpid()
                armed_r, armed_w = os.pipe()
                pid = os.fork()
                if pid == 0:
                    inherited = (sock.fileno(), wake_r, wake_w, selector.fileno(), armed_r)
                    _run_job(json.loads(message), fds[0], host, armed_w, inherited)
                os.close(fds[0])
                os.close(armed_w)
                os.read(armed_r, 1)  # EOF once the child has armed its death signal (or has died)
                os.close(armed_r)
                sock.send(json.dumps({"pid": pid}).encode())
            for pid, status in _reaped():
                sock.send(json.dumps({"pid": pid, "exit": status}).encode())


def main(argv: list[str]) -> None:
    serve(socket.socket(fileno=int(argv[0])), argv[1:])


# ---- the executor's end -------------------------------------------------------------------------------------------


@dataclass
class HostedJob:
    """A job process the host forked: what the executor uses of a `Popen`."""

    pid: int
    stdout: IO[str]
    _status: Future[int] = field(repr=False)

    def wait(self) -> int:
        return self._status.result()


class JobHost:
    """Starts the host process, sends it jobs, hands back their pids and exit statuses. `start` early: the host's
    imports then run on another core while the stack starts; jobs sent before it is ready wait for it."""

    def __init__(self, modules: Sequence[str], cwd: Path) -> None:
        self._modules, self._cwd = list(modules), cwd
        self._sock, self._theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._send_lock = threading.Lock()
        # The pid and its exit status's future together: the job may exit (and its status be set) before `spawn` runs.
        self._pids: queue.SimpleQueue[tuple[int, Future[int]] | None] = queue.SimpleQueue()
        self._statuses: dict[int, Future[int]] = {}
        self._statuses_lock = threading.Lock()
        self._gone = threading.Event()
        self._thread = threading.Thread(target=self._serve_replies, name="job-host", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> HostedJob | None:
        """Fork `python -m MODULE ...` in the host; None when the host is gone (the caller then execs it)."""
        if self._gone.is_set():
            return None
        request = json.dumps({"argv": list(argv), "env": dict(env), "cwd": str(cwd)}).encode()
        read, write = os.pipe()
        try:
            with self._send_lock:
                try:
                    socket.send_fds(self._sock, [request], [write])
                except OSError:
                    pid = None
                else:
                    pid = self._pids.get()
        finally:
            os.close(write)
        if pid is None:
            os.close(read)
            return None
        return HostedJob(pid[0], open(read, encoding="utf-8", errors="replace"), pid[1])

    def stop(self) -> None:
        """Close the host's socket: it exits, and a job still running dies with it."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._sock.close()
        self._theirs.close()  # when the host never started

    def _serve_replies(self) -> None:
        """Start the host and relay its replies. This thread is the host's parent: the parent death signal fires
        when it ends, so it lives exactly as long as the host is used."""
        fd = self._theirs.fileno()
        argv = [sys.executable, "-m", "cli.local.job_host", str(fd), *self._modules]
        try:
            proc = guarded_popen(argv, cwd=self._cwd, stdin=subprocess.DEVNULL, pass_fds=(fd,), start_new_session=True)
        except OSError as exc:
            print(f"local executor: job host did not start ({exc}); jobs start as new processes", file=sys.stderr)
            self._lost()
            return
        finally:
            self._theirs.close()
        try:
            while message := self._sock.recv(MAX_MESSAGE):
                reply = json.loads(message)
                with self._statuses_lock:
                    if "exit" in reply:
                        self._statuses.pop(reply["pid"]).set_result(reply["exit"])
                    else:
                        status: Future[int] = Future()
                        self._statuses[reply["pid"]] = status
                        self._pids.put((reply["pid"], status))
        except OSError:
            pass
        finally:
            self._lost()
            proc.wait()

    def _lost(self) -> None:
        """No more replies: a job sent meanwhile is not run, a job still out died with the host."""
        self._gone.set()
        self._pids.put(None)
        with self._statuses_lock:
            for status in self._statuses.values():
                status.set_result(LOST)
            self._statuses.clear()


if __name__ == "__main__":
    main(sys.argv[1:])
