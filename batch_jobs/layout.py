"""S3 key layout of a stack's bucket: the only place that spells an object key."""

from __future__ import annotations

from pathlib import PurePosixPath


def video_prefix(video_id: str) -> str:
    return f"videos/{video_id}/"


def source_key(video_id: str, file_name: str) -> str:
    return f"videos/{video_id}/source/{PurePosixPath(file_name).name}"


def chunk_key(video_id: str, index: int, ext: str) -> str:
    return f"videos/{video_id}/chunks/{index:05d}.{ext.lstrip('.')}"


def result_key(video_id: str, step: str, index: int) -> str:
    """Deterministic: a retried or duplicate job overwrites the same object instead of leaving a second one."""
    return f"videos/{video_id}/results/{step}/{index:05d}.json"
