"""Clip helpers for the pipeline tests (the clips themselves come from `batch_jobs.sample_clip`)."""

from __future__ import annotations

from pathlib import Path

import av

from devtools.sample_clip import make_clip

__all__ = ["decoded_times", "make_clip"]


def decoded_times(path: Path) -> list[float]:
    """Presentation times (seconds) of every decoded frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float((f.pts or 0) * f.time_base) for f in container.decode(stream) if f.time_base is not None]
