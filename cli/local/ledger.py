"""The executor's record of every Batch job it has seen, one JSON file per job in the data directory.

moto forgets its Batch jobs when the server stops; the ledger is what lets a restarted stack re-run the jobs that
were queued or running, and never run a finished one twice.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from batch_jobs.lifecycle import JOB_RUNNABLE
from cli.local.files import read_json, write_json


@dataclass
class JobRecord:
    """One Batch job as the executor runs it: the resolved command and environment, and how its attempts went."""

    job_id: str
    job_name: str
    job_arn: str
    job_queue: str
    job_definition: str
    job_definition_arn: str
    command: list[str]
    environment: dict[str, str]
    parameters: dict[str, str]
    created_at: int
    gpu: bool = False
    status: str = JOB_RUNNABLE  # the statuses are Batch's own (batch_jobs/lifecycle.py)
    attempts: int = 0
    pid: int | None = None
    started_at: int | None = None
    stopped_at: int | None = None
    exit_code: int | None = None
    status_reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def log_stream(self) -> str:
        """The stream awslogs gives a Batch job: `<job definition name>/default/<task id>` (moto uses the job id)."""
        return f"{self.job_definition}/default/{self.job_id}"


class Ledger:
    """Thread-safe job records, written through to disk on every change."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._records: dict[str, JobRecord] = {}
        for path in sorted(directory.glob("*.json")):
            data = read_json(path)
            if isinstance(data, dict):
                record = JobRecord(**data)
                self._records[record.job_id] = record

    def __contains__(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._records

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._records.get(job_id)

    def all(self) -> list[JobRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda r: (r.created_at, r.job_id))

    def save(self, record: JobRecord) -> None:
        with self._lock:
            self._records[record.job_id] = record
            write_json(self._directory / f"{record.job_id}.json", asdict(record))
