"""Job output to CloudWatch Logs, where awslogs puts a Batch job's output, and to a file that outlives moto."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from cli.local.files import read_json

MAX_BATCH = 500


def ensure_stream(logs: Any, group: str, stream: str) -> None:
    for call, kwargs in (
        (logs.create_log_group, {"logGroupName": group}),
        (logs.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
    ):
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            call(**kwargs)


class JobLog:
    """Lines of one job attempt: appended to `<data>/logs/<job id>.jsonl` at once, sent to CloudWatch in batches."""

    def __init__(self, logs: Any, group: str, stream: str, path: Path) -> None:
        self._logs, self._group, self._stream = logs, group, stream
        self._file = path.open("a")
        self._pending: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        meta = path.with_suffix(".stream.json")
        if not meta.exists():
            meta.write_text(json.dumps({"group": group, "stream": stream}))
        ensure_stream(logs, group, stream)

    def write(self, line: str) -> None:
        event = {"timestamp": int(time.time() * 1000), "message": line.rstrip("\n")}
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()
        self._pending.append(event)
        if len(self._pending) >= MAX_BATCH or time.monotonic() - self._last_flush > 1.0:
            self.flush()

    def flush(self) -> None:
        for start in range(0, len(self._pending), MAX_BATCH):
            batch = self._pending[start : start + MAX_BATCH]
            self._logs.put_log_events(logGroupName=self._group, logStreamName=self._stream, logEvents=batch)
        self._pending.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        self._file.close()


def restore_logs(logs: Any, directory: Path) -> int:
    """Replay every saved job log into CloudWatch Logs (moto starts empty); returns the number of streams."""
    count = 0
    for meta_path in sorted(directory.glob("*.stream.json")):
        meta = read_json(meta_path)
        ensure_stream(logs, meta["group"], meta["stream"])
        lines = meta_path.with_name(meta_path.name.replace(".stream.json", ".jsonl"))
        events = [json.loads(line) for line in lines.read_text().splitlines() if line] if lines.exists() else []
        for start in range(0, len(events), MAX_BATCH):
            logs.put_log_events(
                logGroupName=meta["group"], logStreamName=meta["stream"], logEvents=events[start : start + MAX_BATCH]
            )
        count += 1
    return count
