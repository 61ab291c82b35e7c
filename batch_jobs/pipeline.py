"""The ordered steps every chunk walks through.

`pipeline.json` is data (Ansible reads it too); this module turns it into typed `Step`s and answers the questions the
router and the job ask: which step comes next, which index a step name has.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_jobs.errors import PipelineError

PIPELINE_JSON = Path(__file__).with_name("pipeline.json")
ACTIONS = ("split", "detect", "summarize", "probe")
SPLIT_ACTION = "split"


@dataclass(frozen=True)
class Step:
    """One step of the pipeline: a Batch job per chunk (except the first, `split`, which makes the chunks)."""

    name: str
    action: str
    gpu: bool = False
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "action": self.action, "gpu": self.gpu}
        if self.options:
            data["options"] = dict(self.options)
        return data


Pipeline = tuple[Step, ...]


def parse_pipeline(data: Any) -> Pipeline:
    """Validate pipeline JSON: a non-empty list of steps, unique names, known actions, `split` first and only first."""
    if not isinstance(data, list) or not data:
        raise PipelineError("pipeline must be a non-empty list of steps")
    steps: list[Step] = []
    for raw in data:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("action"), str):
            raise PipelineError(f"pipeline step must have a name and an action: {raw!r}")
        options = raw.get("options", {})
        if not isinstance(options, dict):
            raise PipelineError(f"pipeline step {raw['name']!r}: options must be an object")
        steps.append(Step(raw["name"], raw["action"], bool(raw.get("gpu", False)), options))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise PipelineError(f"pipeline step names must be unique: {names}")
    unknown = [s.action for s in steps if s.action not in ACTIONS]
    if unknown:
        raise PipelineError(f"unknown pipeline action {unknown[0]!r} (known: {', '.join(ACTIONS)})")
    if steps[0].action != SPLIT_ACTION or any(s.action == SPLIT_ACTION for s in steps[1:]):
        raise PipelineError("the first pipeline step, and only the first, must be the split action")
    return tuple(steps)


def load_pipeline(path: Path = PIPELINE_JSON) -> Pipeline:
    """The default pipeline shipped with the package."""
    return parse_pipeline(json.loads(path.read_text()))


def step_index(pipeline: Sequence[Step], name: str) -> int:
    """Position of a step by name; an unknown name is a clear error, not an IndexError later."""
    for i, step in enumerate(pipeline):
        if step.name == name:
            return i
    raise PipelineError(f"unknown step {name!r} (pipeline: {', '.join(s.name for s in pipeline)})")
