"""Local commands of `derby-batch`: `detect` (analyze videos/images), `sample` (generate a test clip with ground
truth) and `bench` (measure the inference loop). Everything runs on this machine; nothing touches AWS."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from detector.errors import DetectorError

console = Console()
err_console = Console(stderr=True)

Tiles = Annotated[
    str, typer.Option("--tiles", help="auto, off, or COLSxROWS like 4x3: tiled inference for wide shots.")
]
TileOverlap = Annotated[
    float, typer.Option("--tile-overlap", help="Overlap of neighbouring tiles, fraction of a tile.")
]
BatchSize = Annotated[
    int, typer.Option("--batch-size", help="Frames per batch; images (frames or tiles) per model call.")
]
Detectors = Annotated[str, typer.Option("--detectors", help="Comma-separated: human, face.")]
Model = Annotated[
    Path | None, typer.Option("--model", help="Person model: TF1 frozen graph (.pb) or TF2 SavedModel directory.")
]
Threshold = Annotated[float, typer.Option("--threshold", help="Minimum score of a reported detection.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


def _detectors(spec: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in spec.split(",") if name.strip())


def _size(spec: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", spec)
    if not match or int(match[1]) < 64 or int(match[2]) < 64 or int(match[1]) % 2 or int(match[2]) % 2:
        raise DetectorError(f"--size must be WIDTHxHEIGHT with even sides of at least 64, got {spec!r}")
    return int(match[1]), int(match[2])


def detect(
    inputs: Annotated[list[Path], typer.Argument(help="Video files, image files or directories of images.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The detections JSON to write.")],
    annotate: Annotated[Path | None, typer.Option("--annotate", help="Also write an MP4 with the boxes drawn.")] = None,
    detectors: Detectors = "human,face",
    every: Annotated[int, typer.Option("--every", help="Analyze every Nth frame.")] = 1,
    fps: Annotated[float | None, typer.Option("--fps", help="Analyze about F frames per second instead.")] = None,
    tiles: Tiles = "auto",
    tile_overlap: TileOverlap = 0.2,
    batch_size: BatchSize = 8,
    model: Model = None,
    threshold: Threshold = 0.5,
    face_mode: Annotated[
        str, typer.Option("--face-mode", help="people: search faces inside person boxes; frame: in the whole frame.")
    ] = "people",
    track: Annotated[
        bool, typer.Option("--track/--no-track", help="Give people in a video track ids (images are never tracked).")
    ] = True,
    teams: Annotated[
        int | None, typer.Option("--teams", help="Teams the tracked people form, besides officials (default 2).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Find people and faces in videos and images; write derby-batch/detections@2 JSON (see docs/detector.md)."""
    from detector.analyzer import AnalyzeOptions, VideoAnalyzer
    from detector.sources import open_sources

    open_sources(inputs)  # fail on bad input before the models load
    options = AnalyzeOptions(
        _detectors(detectors),
        every,
        fps,
        tiles,
        tile_overlap,
        batch_size,
        model,
        threshold,
        face_mode,
        track=track,
        teams=teams,
    )
    analyzer = VideoAnalyzer(options)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("detect", total=None, fps=0.0)
        summary = analyzer.run(
            inputs,
            output,
            annotate,
            lambda p: bar.update(task, completed=p.frames_analyzed, total=p.frames_expected, fps=p.fps),
        )
    if as_json:
        payload = {
            "frames_analyzed": summary.frames_analyzed,
            "seconds": round(summary.seconds, 3),
            "fps": round(summary.fps, 2),
            "detections": summary.counts,
            "tiles": summary.tiles,
            "model_inputs_per_frame": round(summary.model_inputs_per_frame, 2),
            "tracks": summary.tracks,
            "output": str(output),
            "annotate": str(annotate) if annotate else None,
        }
        print(json.dumps(payload))
        return
    found = ", ".join(f"{n} {label}" for label, n in sorted(summary.counts.items())) or "nothing"
    tracked = f" in {summary.tracks} tracks" if summary.tracks is not None else ""
    console.print(
        f"analyzed {summary.frames_analyzed} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps, tiles "
        f"{summary.tiles}, {summary.model_inputs_per_frame:.1f} model inputs per frame): found {found}{tracked}",
        highlight=False,
    )
    console.print(f"wrote {output}" + (f" and {annotate}" if annotate else ""), highlight=False)


def sample(
    output: Annotated[Path, typer.Argument(help="The MP4 to write; ground truth goes to <name>.gt.json beside it.")],
    seconds: Annotated[float, typer.Option("--seconds", help="Clip length.")] = 3.0,
    people: Annotated[int | None, typer.Option("--people", help="Number of people (default 4, wide shot 16).")] = None,
    size: Annotated[str | None, typer.Option("--size", help="WIDTHxHEIGHT (default 1280x720).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the layout.")] = 0,
    wide: Annotated[bool, typer.Option("--wide", help="Wide shot: 1920x1080, people 8-12% of the height.")] = False,
) -> None:
    """Generate an H.264 test clip of people moving over a field, with exact ground truth."""
    from detector.sample import SampleSpec, write_sample

    spec = SampleSpec.wide(seconds, seed=seed) if wide else SampleSpec(seconds=seconds, seed=seed)
    if size is not None:
        width, height = _size(size)
        spec = SampleSpec(width, height, spec.seconds, spec.fps, spec.people, spec.person_height, seed)
    if people is not None:
        if people < 1:
            raise DetectorError(f"--people must be at least 1, got {people}")
        spec = SampleSpec(spec.width, spec.height, spec.seconds, spec.fps, people, spec.person_height, seed)
    if seconds <= 0:
        raise DetectorError(f"--seconds must be positive, got {seconds}")
    truth = write_sample(output, spec)
    console.print(
        f"wrote {output} ({spec.width}x{spec.height}, {spec.seconds:g} s, {spec.people} people) and {truth}",
        highlight=False,
    )


def bench(
    video: Annotated[
        Path | None, typer.Argument(help="Video to measure on (default: a generated 1280x720 sample).")
    ] = None,
    batch_size: BatchSize = 8,
    tiles: Tiles = "off",
    tile_overlap: TileOverlap = 0.2,
    frames: Annotated[int, typer.Option("--frames", help="Frames to measure on.")] = 120,
    rounds: Annotated[int, typer.Option("--rounds", help="Measure each loop this many times; keep the best.")] = 2,
    detectors: Detectors = "human",
    model: Model = None,
    as_json: AsJson = False,
) -> None:
    """Frames per second of pure inference, end-to-end detect, and the decode-one-run-one loop, on the same frames."""
    from detector.analyzer import AnalyzeOptions
    from detector.bench import run_bench
    from detector.sample import SampleSpec, write_sample

    options = AnalyzeOptions(
        _detectors(detectors), tiles=tiles, tile_overlap=tile_overlap, batch_size=batch_size, model=model
    )
    load = os.getloadavg()[0]  # other processes slow every loop down: say how busy the machine was
    with tempfile.TemporaryDirectory() as tmp:
        if video is None:
            video = Path(tmp) / "sample.mp4"
            write_sample(video, SampleSpec(seconds=frames / SampleSpec.fps))
        result = run_bench(video, options, frames, rounds)
    if as_json:
        print(json.dumps(result.to_json()))
        return
    console.print(
        f"{result.frames} frames, batch size {result.batch_size}, tiles {result.tiles}, best of {rounds} "
        f"(load average before: {load:.1f})",
        highlight=False,
    )
    for scene in result.scenes:
        if scene.probe_inputs:
            console.print(
                f"auto tiles at frame {scene.index}: {scene.grid.label} ({scene.people} people, median "
                f"{scene.person_height or 0:.0f} px; probe {scene.probe_inputs} inputs)",
                highlight=False,
            )
    console.print(f"model inputs per frame {result.model_inputs_per_frame:.1f} (probes included)", highlight=False)
    pure_cpu, end_to_end_cpu, seed_cpu = result.cpu_ms_per_frame
    console.print(
        f"pure inference  {result.pure_inference_fps:7.1f} fps   {pure_cpu:6.1f} ms CPU/frame", highlight=False
    )
    console.print(
        f"end to end      {result.end_to_end_fps:7.1f} fps   {end_to_end_cpu:6.1f} ms CPU/frame", highlight=False
    )
    console.print(f"seed style      {result.seed_style_fps:7.1f} fps   {seed_cpu:6.1f} ms CPU/frame", highlight=False)
    console.print(f"end to end / pure inference  {result.end_to_end_vs_pure:.2f}  (target >= 0.90)", highlight=False)
    console.print(f"tracking / end to end (CPU)  {result.tracking_share:.3f} (target <= 0.03)", highlight=False)
    console.print(
        f"end to end / seed style      {result.end_to_end_vs_seed:.2f}  (target >= 2 whole-frame)", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)
    app.command("sample")(sample)
    app.command("bench")(bench)
