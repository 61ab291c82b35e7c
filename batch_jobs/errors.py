"""Errors of the pipeline that a user or the job's state record can act on."""


class PipelineError(Exception):
    """A pipeline failure with a one-line reason (unknown step, malformed item, missing object, no stack)."""
