"""The ordered steps every chunk walks through, then the steps each video takes once all its chunks are done.

`pipeline.json` is data (Ansible reads it too); this module turns it into typed `Step`s and answers the questions the
router and the job ask: which step comes next, which index a step name has, which steps are per video.
A per-video step (`"per": "video"`) is one job for the whole video, recorded on the video item; it runs after the
last chunk step of every chunk is done (stitching chunk-local tracks into video-wide ids needs them all).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_jobs.errors import PipelineError

PIPELINE_JSON = Path(__file__).with_name("pipeline.json")
ACTIONS = ("split", "detect", "summarize", "probe", "stitch")
SPLIT_ACTION = "split"
VIDEO_ACTIONS = frozenset({"stitch"})  # actions that read every chunk's results: per-video steps only
PER_CHUNK, PER_VIDEO = "chunk", "video"


@dataclass(frozen=True)
class Step:
    """One step of the pipeline: a Batch job per chunk (except the first, `split`, which makes the chunks), or one
    per video (`per = "video"`)."""

    name: str
    action: str
    gpu: bool = False
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    per: str = PER_CHUNK

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "action": self.action, "gpu": self.gpu}
        if self.per != PER_CHUNK:
            data["per"] = self.per
        if self.options:
            data["options"] = dict(self.options)
        return data


Pipeline = tuple[Step, ...]


def parse_pipeline(data: Any) -> Pipeline:
    """Validate pipeline JSON: a non-empty list of steps, unique names, known actions, `split` first and only first,
    per-video steps (video actions only) after every chunk step."""
    if not isinstance(data, list) or not data:
        raise PipelineError("pipeline must be a non-empty list of steps")
    steps: list[Step] = []
    for raw in data:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("action"), str):
            raise PipelineError(f"pipeline step must have a name and an action: {raw!r}")
        options = raw.get("options", {})
        if not isinstance(options, dict):
            raise PipelineError(f"pipeline step {raw['name']!r}: options must be an object")
        per = raw.get("per", PER_CHUNK)
        if per not in (PER_CHUNK, PER_VIDEO):
            raise PipelineError(f"pipeline step {raw['name']!r}: per must be {PER_CHUNK!r} or {PER_VIDEO!r}")
        steps.append(Step(raw["name"], raw["action"], bool(raw.get("gpu", False)), options, per))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise PipelineError(f"pipeline step names must be unique: {names}")
    unknown = [s.action for s in steps if s.action not in ACTIONS]
    if unknown:
        raise PipelineError(f"unknown pipeline action {unknown[0]!r} (known: {', '.join(ACTIONS)})")
    if steps[0].action != SPLIT_ACTION or any(s.action == SPLIT_ACTION for s in steps[1:]):
        raise PipelineError("the first pipeline step, and only the first, must be the split action")
    for step in steps:
        if (step.per == PER_VIDEO) != (step.action in VIDEO_ACTIONS):
            raise PipelineError(f"pipeline step {step.name!r}: action {step.action!r} runs per {_per(step.action)}")
    pers = [s.per for s in steps]
    if PER_VIDEO in pers and PER_CHUNK in pers[pers.index(PER_VIDEO) :]:
        raise PipelineError("per-video pipeline steps must come after every chunk step")
    return tuple(steps)


def _per(action: str) -> str:
    return PER_VIDEO if action in VIDEO_ACTIONS else PER_CHUNK


def chunk_steps(pipeline: Pipeline) -> Pipeline:
    """The steps each chunk walks (the split first); a chunk item's `steps` list has one entry per step here."""
    return tuple(s for s in pipeline if s.per == PER_CHUNK)


def video_steps(pipeline: Pipeline) -> Pipeline:
    """The per-video steps, in order; a video item's `steps` list has one entry per step here."""
    return tuple(s for s in pipeline if s.per == PER_VIDEO)


def load_pipeline(path: Path = PIPELINE_JSON) -> Pipeline:
    """The default pipeline shipped with the package."""
    return parse_pipeline(json.loads(path.read_text()))


def step_index(pipeline: Sequence[Step], name: str) -> int:
    """Position of a step by name; an unknown name is a clear error, not an IndexError later."""
    for i, step in enumerate(pipeline):
        if step.name == name:
            return i
    raise PipelineError(f"unknown step {name!r} (pipeline: {', '.join(s.name for s in pipeline)})")
