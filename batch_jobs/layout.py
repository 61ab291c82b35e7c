"""S3 key layout of a stack's bucket: the only place that spells an object key."""

from __future__ import annotations

from batch_jobs.errors import PipelineError


def chunk_key(video_id: str, index: int, ext: str) -> str:
    return f"videos/{video_id}/chunks/{index:05d}.{ext.lstrip('.')}"


def result_key(video_id: str, step: str, index: int, attempt: int) -> str:
    """One object per attempt: only the attempt's fenced job writes it (a Batch retry of that job rewrites the same
    object), so a job of an earlier attempt that runs on after a `retry` cannot overwrite the recorded result."""
    return f"videos/{video_id}/results/{step}/{index:05d}.a{attempt}.json"


def video_result_key(video_id: str, step: str, attempt: int) -> str:
    """A per-video step's result, one object per attempt as for chunks."""
    return f"videos/{video_id}/results/{step}/video.a{attempt}.json"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key), or a one-line error."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise PipelineError(f"not an S3 object URI (s3://bucket/key): {uri!r}")
    return bucket, key
