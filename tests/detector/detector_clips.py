"""Values the detector tests share with their fixtures (conftest.py is not importable by name across suites)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VFR_TIMES_MS = [0, 40, 80, 200, 240, 500, 533, 566, 1000, 1100]


@dataclass(frozen=True)
class Clip:
    video: Path
    truth: Path


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    error: str  # what `derby-batch` printed on stderr (the one-line error), stripped
