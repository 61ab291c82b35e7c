"""Stack configuration: resource names read from SSM `/derby-batch/<stack>/config` (written by the deploy playbook)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batch_jobs.errors import PipelineError
from batch_jobs.pipeline import Pipeline, Step, load_pipeline, parse_pipeline

DEFAULT_STACK = "derby"
STACK_ENV = "DERBY_BATCH_STACK"
DEFAULT_CHUNK_SECONDS = 30.0  # for configs written before the playbook published `chunk_seconds`


def stack_name(explicit: str | None = None) -> str:
    """`--stack`, else `DERBY_BATCH_STACK`, else `derby`."""
    return explicit or os.environ.get(STACK_ENV) or DEFAULT_STACK


def parameter_name(stack: str) -> str:
    return f"/derby-batch/{stack}/config"


@dataclass(frozen=True)
class StackConfig:
    """Names of one stack's resources; the pipeline is part of it so the router and jobs agree on the steps.

    `chunk_seconds` is the stack's default chunk length (the playbook's variable), used by `submit` unless overridden.
    """

    stack: str
    region: str
    bucket: str
    table: str
    log_group: str
    job_queues: Mapping[str, str] = field(hash=False)
    job_definitions: Mapping[str, str] = field(hash=False)
    pipeline: Pipeline = field(default_factory=load_pipeline)
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS

    def queue_for(self, step: Step) -> str:
        return self.job_queues["gpu" if step.gpu else "cpu"]

    def job_definition_for(self, step: Step) -> str:
        try:
            return self.job_definitions[step.name]
        except KeyError:
            raise PipelineError(f"stack {self.stack!r} has no job definition for step {step.name!r}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "region": self.region,
            "bucket": self.bucket,
            "table": self.table,
            "log_group": self.log_group,
            "job_queues": dict(self.job_queues),
            "job_definitions": dict(self.job_definitions),
            "pipeline": [s.to_json() for s in self.pipeline],
            "chunk_seconds": self.chunk_seconds,
        }

    @classmethod
    def from_json(cls, data: Any) -> StackConfig:
        try:
            queues, definitions = dict(data["job_queues"]), dict(data["job_definitions"])
            config = cls(
                stack=str(data["stack"]),
                region=str(data["region"]),
                bucket=str(data["bucket"]),
                table=str(data["table"]),
                log_group=str(data["log_group"]),
                job_queues=queues,
                job_definitions=definitions,
                pipeline=parse_pipeline(data["pipeline"]),
                chunk_seconds=float(data.get("chunk_seconds", DEFAULT_CHUNK_SECONDS)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PipelineError(f"malformed stack config: missing or invalid {exc}") from None
        if not {"gpu", "cpu"} <= set(queues):
            raise PipelineError("malformed stack config: job_queues needs 'gpu' and 'cpu'")
        if config.chunk_seconds <= 0:
            raise PipelineError(f"malformed stack config: chunk_seconds must be positive, got {config.chunk_seconds}")
        return config


def default_config(
    stack: str, region: str, account: str = "123456789012", pipeline: Pipeline | None = None
) -> StackConfig:
    """The names the deploy playbook gives a stack; the local stack and tests bootstrap the same ones."""
    steps = pipeline or load_pipeline()
    return StackConfig(
        stack=stack,
        region=region,
        bucket=f"{stack}-data-{account}-{region}",
        table=f"{stack}-items",
        log_group=f"/aws/batch/{stack}",
        job_queues={"gpu": f"{stack}-gpu", "cpu": f"{stack}-cpu"},
        job_definitions={s.name: f"{stack}-{s.name}" for s in steps},
        pipeline=steps,
    )


def load_config(ssm: Any, stack: str) -> StackConfig:
    """Read the stack's config from SSM; a missing parameter means the stack is not deployed (one-line error)."""
    try:
        value = ssm.get_parameter(Name=parameter_name(stack))["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        raise PipelineError(f"stack {stack!r} is not deployed (no SSM parameter {parameter_name(stack)})") from None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise PipelineError(f"malformed stack config in {parameter_name(stack)}: {exc}") from None
    return StackConfig.from_json(data)
