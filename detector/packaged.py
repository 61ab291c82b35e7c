"""Model files that ship inside installed wheels: found through the wheel's file list, never downloaded."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from detector.errors import DetectorError


def packaged_file(distribution: str, name: str, needed_by: str) -> Path:
    """The installed file `name` of `distribution`; a one-line error names what needs it and what is missing."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise DetectorError(f"{needed_by} needs the package {distribution}") from exc
    for file in files:
        if file.name == name:
            return Path(str(file.locate()))
    raise DetectorError(f"{distribution} is installed but has no {name}")
