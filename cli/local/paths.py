"""Where the local stack keeps its state, so later CLI calls and a restarted `local up` find it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "DERBY_BATCH_LOCAL_DIR"
DEFAULT_DATA_DIR = Path(".derby-batch/local")
OUTPUT_ROOT = Path("derby-output")  # results of local runs: <root>/<video id>/


@dataclass(frozen=True)
class LocalPaths:
    """The files of one data directory; every part of the local stack names its files through this."""

    root: Path

    @classmethod
    def from_env(cls) -> LocalPaths:
        return cls(Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).resolve())

    @property
    def lock(self) -> Path:
        return self.root / "local.lock"

    @property
    def endpoint(self) -> Path:
        """JSON {pid, endpoint, port}: how other CLI calls find a running `local up`."""
        return self.root / "endpoint.json"

    @property
    def pipeline(self) -> Path:
        """The pipeline of this stack, kept so a later start runs the steps its videos were submitted with."""
        return self.root / "pipeline.json"

    @property
    def items(self) -> Path:
        return self.root / "dynamodb"

    @property
    def objects(self) -> Path:
        return self.root / "s3"

    @property
    def jobs(self) -> Path:
        """The executor's ledger: one JSON file per job it has seen."""
        return self.root / "jobs"

    @property
    def logs(self) -> Path:
        """Job output, one JSON-lines file per job, replayed into CloudWatch Logs on start."""
        return self.root / "logs"

    @property
    def work(self) -> Path:
        """Scratch directories of running jobs (a container's writable layer)."""
        return self.root / "work"

    def ensure(self) -> LocalPaths:
        for path in (self.root, self.items, self.objects, self.jobs, self.logs, self.work):
            path.mkdir(parents=True, exist_ok=True)
        return self
