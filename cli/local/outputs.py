"""What a run on the local stack leaves in `./derby-output/<video id>/`: the merged results, the people-per-second
plot and the annotated first chunk, plus the numbers the demo prints about them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_jobs.actions import people_per_second
from batch_jobs.merge import MergedResults, merge_results, plot_people, write_document
from batch_jobs.stack import Stack
from cli.local.annotate_chunk import annotate_chunk
from cli.local.paths import OUTPUT_ROOT


@dataclass(frozen=True)
class Outputs:
    directory: Path
    results: Path
    plot: Path
    annotated: Path | None
    merged: MergedResults

    def paths(self) -> list[Path]:
        return [p for p in (self.results, self.plot, self.annotated) if p is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "results": str(self.results),
            "plot": str(self.plot),
            "annotated": str(self.annotated) if self.annotated else None,
            "frames": len(self.merged.document["frames"]),
            "chunks": self.merged.chunks,
            "missing_chunks": list(self.merged.missing),
        }


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
    """Merged results JSON and plot (as `derby-batch results` writes them) and the annotated MP4 of chunk 0.

    Prints nothing: the caller says where they are (on stdout, or on stderr under --json)."""
    directory = root / video_id
    results, plot = directory / "results.json", directory / "people-per-second.png"
    merged = merge_results(stack.s3, stack.store, stack.config.pipeline, video_id)
    write_document(merged.document, results)
    plot_people(merged.document, plot)
    chunks = stack.store.chunks(video_id)
    annotated = annotate_chunk(stack.s3, stack.config, chunks[0], directory / "chunk-00000-annotated.mp4")
    return Outputs(directory, results, plot, annotated, merged)
