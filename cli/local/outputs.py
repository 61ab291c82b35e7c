"""What a run on the local stack leaves in `./derby-output/<video id>/`: the merged results, the people-per-second
plot and the annotated first chunk, plus the numbers the demo prints about them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_jobs.actions import people_per_second
from cli.local.annotate_chunk import annotate_chunk
from cli.local.paths import OUTPUT_ROOT
from cli.stack import Stack


@dataclass(frozen=True)
class Outputs:
    directory: Path
    results: Path
    plot: Path
    annotated: Path | None


@dataclass(frozen=True)
class Seen:
    """People and faces in the merged results: the most on screen in any second (as the plot shows it), and boxes over
    all frames."""

    frames: int
    most_people: int
    person_boxes: int
    face_boxes: int

    @classmethod
    def of(cls, merged: dict[str, Any]) -> Seen:
        per_frame = [[d.get("label") for d in f.get("detections", [])] for f in merged["frames"]]
        return cls(
            frames=len(per_frame),
            most_people=max(people_per_second(merged["frames"]).values(), default=0),
            person_boxes=sum(labels.count("person") for labels in per_frame),
            face_boxes=sum(labels.count("face") for labels in per_frame),
        )


def write_outputs(stack: Stack, video_id: str, root: Path = OUTPUT_ROOT) -> Outputs:
    """Merged results JSON and plot (as `derby-batch results` writes them) and the annotated MP4 of chunk 0."""
    from cli.pipeline_cmd import results

    directory = root / video_id
    outputs = Outputs(directory, directory / "results.json", directory / "people-per-second.png", None)
    results(video_id, output=outputs.results, plot=outputs.plot, stack_name=stack.config.stack)
    chunks = stack.store.chunks(video_id)
    annotated = annotate_chunk(stack.s3, stack.config, chunks[0], directory / "chunk-00000-annotated.mp4")
    return Outputs(directory, outputs.results, outputs.plot, annotated)
