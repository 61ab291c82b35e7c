"""The one error type of the local stack: a message a user can act on, printed as one line by the CLI."""

from batch_jobs.errors import PipelineError


class LocalStackError(PipelineError):
    """The local stack cannot start or be reached (port in use, already running, stale files)."""
