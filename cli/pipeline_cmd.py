"""AWS pipeline commands: `submit`, `status`, `results`, `logs`, `retry`, `cancel`.

Each command opens its stack with `cli.stack.open_stack` and calls `batch_jobs`; this module only parses options and
prints. Errors are `PipelineError`s, which `cli/app.py` prints as one line.

With `--json`, stdout carries exactly one JSON document (on an error, `cli/app.py` prints `{"error": ...}`); every
line for a human (progress, ids as they are submitted, the outputs written) goes to stderr instead.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from batch_jobs import control, schema
from batch_jobs.batch import JobInfo
from batch_jobs.errors import PipelineError
from batch_jobs.merge import MergedResults, merge_results, plot_people, write_document
from batch_jobs.pipeline import chunk_steps
from batch_jobs.schema import ChunkItem, StepRecord, VideoItem
from batch_jobs.stack import Stack
from batch_jobs.submit import Submitted, check_source, submit_file, submit_s3
from cli.app import keep_for_error_json
from cli.stack import open_stack

console = Console()
err_console = Console(stderr=True)

StackOption = Annotated[str | None, typer.Option("--stack", help="Stack name (default: DERBY_BATCH_STACK or derby).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
WATCH_SECONDS = 2.0
WAIT_SECONDS = 0.5  # `submit --wait` returns this soon after the last video is done: one GetItem per video each time


def _options(every: int | None, fps: float | None) -> dict[str, Any]:
    if every is not None and fps is not None:
        raise PipelineError("use --every or --fps, not both")
    if every is not None and every < 1:
        raise PipelineError(f"--every must be at least 1, got {every}")
    if fps is not None and fps <= 0:
        raise PipelineError(f"--fps must be positive, got {fps}")
    return {"every": every} if every else {"fps": fps} if fps else {}


def _human(as_json: bool) -> Console:
    """Where lines for a human go: stdout, or stderr when stdout is the JSON document."""
    return err_console if as_json else console


def _submit_one(stack: Stack, video: Path, chunk_seconds: float, options: dict[str, Any]) -> Submitted:
    with (
        tempfile.TemporaryDirectory(prefix="derby-split-") as tmp,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err_console,
            disable=not err_console.is_terminal,  # piped, a bar would only leave an empty line behind
            transient=True,
        ) as progress,
    ):
        task = progress.add_task(f"upload {video.name}", total=video.stat().st_size if video.is_file() else None)
        return submit_file(
            stack,
            video,
            Path(tmp),
            chunk_seconds,
            options,
            on_bytes=lambda n: progress.advance(task, n),
        )


def submit(
    videos: Annotated[list[str], typer.Argument(help="Video files, or s3://bucket/key objects (split by a CPU job).")],
    chunk_seconds: Annotated[
        float | None,
        typer.Option("--chunk-seconds", help="Chunk length; cuts at keyframes. Default: the stack's chunk_seconds."),
    ] = None,
    every: Annotated[int | None, typer.Option("--every", help="Analyze every Nth frame.")] = None,
    fps: Annotated[float | None, typer.Option("--fps", help="Analyze about F frames per second.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every video is finished.")] = False,
    as_json: AsJson = False,
    stack_name: StackOption = None,
) -> None:
    """Split videos into chunks by stream copy, upload them and start the pipeline; prints each video id.

    Every input is checked before anything is uploaded; each id is printed as soon as its video is submitted (on
    stderr with --json), so a later failure does not hide it. With --wait, exits 1 unless every video ends done.
    --json prints one object (a list of them for several videos): id, name, chunks, frames, duration, state, error
    and, with --wait on the local stack, the outputs written; on a failure, the error and the videos submitted."""
    options = _options(every, fps)
    if chunk_seconds is not None and chunk_seconds <= 0:
        raise PipelineError(f"--chunk-seconds must be positive, got {chunk_seconds}")
    stack = open_stack(stack_name)
    seconds = stack.config.chunk_seconds if chunk_seconds is None else chunk_seconds
    for v in videos:
        check_source(stack.s3, v)
    human = _human(as_json)
    done: list[Submitted] = []
    for v in videos:
        s = (
            submit_s3(stack, v, seconds, options)
            if v.startswith("s3://")
            else _submit_one(stack, Path(v), seconds, options)
        )
        done.append(s)
        keep_for_error_json(submitted=[d.to_json() for d in done])
        detail = f"{s.chunks} chunks, {s.frames} frames, {s.duration:.1f} s" if s.chunks else "split job submitted"
        human.print(f"{s.video_id}  {s.name}: {detail}", highlight=False)
    outputs: dict[str, dict[str, Any]] = {}
    if wait:
        _wait(stack, [s.video_id for s in done], human)
        outputs = _write_local_outputs(stack, [s.video_id for s in done], human)
    if not (as_json or wait):
        return
    videos_now = [stack.store.get_video(s.video_id) for s in done]
    if as_json:
        rows = [_submitted_row(s, v, outputs.get(s.video_id)) for s, v in zip(done, videos_now, strict=True)]
        print(json.dumps(rows[0] if len(rows) == 1 else rows))
    unfinished = [video for video in videos_now if video.state != schema.DONE]
    if wait and unfinished:
        for video in unfinished:
            error = f": {video.error}" if video.error else ""
            err_console.print(f"{video.video_id} ended {video.state}{error}", highlight=False)
        raise typer.Exit(1)


def _submitted_row(s: Submitted, video: VideoItem, outputs: dict[str, Any] | None) -> dict[str, Any]:
    row = {**s.to_json(), "chunks": video.chunk_count, "state": video.state, "error": video.error}
    if outputs is not None:
        row["outputs"] = outputs
    return row


def _wait(stack: Stack, video_ids: list[str], human: Console) -> None:
    with Live(console=err_console, transient=True, auto_refresh=False) as live:
        while True:
            videos = [stack.store.get_video(v) for v in video_ids]
            live.update(_videos_table(videos), refresh=True)
            if all(v.state in schema.FINAL for v in videos):
                break
            time.sleep(WAIT_SECONDS)
    human.print(_videos_table(videos))


def merged_lines(merged: MergedResults, output: Path, plot: Path | None) -> list[str]:
    """What `results` says it wrote: the merged document (frames, chunks), and the plot."""
    tracks = merged.document.get("tracks")
    found = f", {len(tracks)} tracks" if tracks is not None else ""
    lines = [f"{output}: {len(merged.document['frames'])} frames from {merged.chunks} chunks{found}"]
    return lines + ([f"{plot}: people per second"] if plot else [])


def _write_local_outputs(stack: Stack, video_ids: list[str], human: Console) -> dict[str, dict[str, Any]]:
    """On the local stack, a finished video's outputs land in ./derby-output/<video id>/ (nothing to fetch from S3);
    their paths by video id, for --json."""
    from cli.local.outputs import write_outputs
    from cli.local.runtime import LOCAL_STACK

    if stack.config.stack != LOCAL_STACK:
        return {}
    written = {}
    for video_id in video_ids:
        if stack.store.get_video(video_id).state == schema.DONE:
            outputs = write_outputs(stack, video_id)
            for line in merged_lines(outputs.merged, outputs.results, outputs.plot):
                human.print(line, highlight=False, soft_wrap=True)
            paths = ", ".join(str(p) for p in outputs.paths())
            err_console.print(f"outputs of {video_id}: {paths}", highlight=False, soft_wrap=True)  # paths unbroken
            written[video_id] = outputs.to_json()
    return written


Malformed = tuple[dict[str, Any], str]  # a raw item that does not follow the schema, and why


def _read_videos(stack: Stack) -> tuple[list[VideoItem], list[Malformed]]:
    """Every video item; a malformed one is listed with its reason instead of aborting the whole listing."""
    videos, malformed = [], []
    for item in stack.store.video_items():
        try:
            videos.append(VideoItem.from_item(item))
        except schema.MalformedItem as exc:
            malformed.append((item, str(exc)))
    return videos, malformed


def _videos_table(videos: list[VideoItem], malformed: list[Malformed] | None = None) -> Table:
    table = Table("video", "name", "state", "chunks", "done", "failed", "created")
    for v in sorted(videos, key=lambda v: v.created_at):
        table.add_row(
            v.video_id,
            v.name,
            v.state,
            str(v.chunk_count),
            str(v.chunks_done),
            str(v.chunks_failed),
            v.created_at,
        )
    for item, reason in malformed or []:
        video_id = str(item.get("pk", "")).removeprefix(schema.PK_PREFIX)
        table.add_row(video_id, str(item.get("name", "")), f"malformed: {reason}", "", "", "", "")
    return table


def _duration(record: StepRecord) -> str:
    """How long the step ran, or has been running so far (`…` marks a running step's elapsed time)."""
    running = record.state == schema.RUNNING and not record.finished_at
    if not record.started_at or not (running or record.finished_at):
        return ""
    end = datetime.fromisoformat(record.finished_at) if record.finished_at else datetime.now(UTC)
    seconds = (end - datetime.fromisoformat(record.started_at)).total_seconds()
    return f"{seconds:.1f}s" + ("…" if running else "")


def chunks_table(stack: Stack, video: VideoItem) -> Table:
    table = Table(
        title=f"{video.video_id} ({video.name}): {video.state}" + (f" - {video.error}" if video.error else "")
    )
    table.add_column("chunk")
    table.add_column("frames")
    walk = chunk_steps(stack.config.pipeline)
    for step in walk:
        table.add_column(step.name)
    table.add_column("error")
    for raw in stack.store.chunk_items(video.video_id):
        try:
            chunk = ChunkItem.from_item(raw)
        except schema.MalformedItem as exc:
            table.add_row(str(raw.get("sk")), "", *[""] * len(walk), str(raw.get("error") or exc))
            continue
        cells = [_step_cell(record) for record in chunk.steps]
        cells += [""] * (len(walk) - len(cells))
        error = chunk.error or next((s.error for s in reversed(chunk.steps) if s.error), "")
        state = " (cancelled)" if chunk.cancelled else ""
        table.add_row(f"{chunk.index}{state}", f"{chunk.start_frame}-{chunk.end_frame}", *cells, error or "")
    for record in video.steps:  # the per-video steps, one row each, under the chunks
        table.add_row(f"video {record.step}", "all", *[""] * (len(walk) - 1), _step_cell(record), record.error or "")
    return table


def _step_cell(record: StepRecord) -> str:
    job = f" {record.job_id[:8]}" if record.job_id else ""
    attempt = f" a{record.attempt}" if record.attempt > 1 else ""
    tracks = f" {record.metrics['tracks']} tracks" if "tracks" in record.metrics else ""
    return f"{record.state}{attempt}{job} {_duration(record)}{tracks}".strip()


def _status_json(stack: Stack, video_id: str | None) -> Any:
    if video_id is None:
        videos, malformed = _read_videos(stack)
        return [schema.plain(v.to_item()) for v in videos] + [
            {**schema.plain(item), "malformed": reason} for item, reason in malformed
        ]
    video = stack.store.get_video(video_id)
    return {"video": schema.plain(video.to_item()), "chunks": schema.plain(stack.store.chunk_items(video_id))}


def status(
    video_id: Annotated[str | None, typer.Argument(help="A video id: its chunks x steps.")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until interrupted.")] = False,
    as_json: AsJson = False,
    stack_name: StackOption = None,
) -> None:
    """The videos of the stack, or one video's chunks and steps (state, job, attempt, duration, error)."""
    stack = open_stack(stack_name)
    if as_json:
        print(json.dumps(_status_json(stack, video_id), indent=2, default=str))
        return

    def render() -> Table:
        if video_id is None:
            return _videos_table(*_read_videos(stack))
        return chunks_table(stack, stack.store.get_video(video_id))

    if not watch:
        console.print(render())
        return
    with Live(render(), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(WATCH_SECONDS)
            live.update(render(), refresh=True)


def results(
    video_id: Annotated[str, typer.Argument(help="The video id printed by submit.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The merged detections JSON to write.")],
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write a people-per-second PNG.")] = None,
    mot: Annotated[Path | None, typer.Option("--mot", help="Also write the tracks as MOTChallenge CSV.")] = None,
    annotate: Annotated[
        Path | None, typer.Option("--annotate", help="Also write the whole video with boxes, ids and teams (MP4).")
    ] = None,
    stack_name: StackOption = None,
) -> None:
    """Merge every chunk's result into one timeline with frame indices and times of the source video."""
    from detector.mot import mot_lines, write_mot

    stack = open_stack(stack_name)
    merged = merge_results(stack.s3, stack.store, stack.config.pipeline, video_id)
    if mot:
        mot_lines(merged.document)  # no tracks: say so before writing anything
    if merged.missing:
        missing = list(merged.missing)
        err_console.print(f"warning: {len(missing)} chunk(s) have no {merged.step} result yet: {missing}")
    write_document(merged.document, output)
    lines = merged_lines(merged, output, plot)
    console.print(lines[0])
    if plot:
        plot_people(merged.document, plot)
        console.print(lines[1])
    if mot:
        console.print(f"{mot}: {write_mot(merged.document, mot)} tracked boxes (MOTChallenge)", highlight=False)
    if annotate:
        from cli.annotate_results import annotate_results

        chunks = stack.store.chunks(video_id)
        frames = annotate_results(stack.s3, stack.config, chunks, merged.document, annotate)
        console.print(f"{annotate}: {frames} frames annotated", highlight=False)


def _log_streams(stack: Stack, step: str, job_id: str, info: JobInfo | None) -> tuple[str, ...]:
    """Every attempt's stream as DescribeJobs names it (on AWS `<step>/default/<ECS task id>`: the playbook sets the
    awslogs prefix to the step name). A job Batch does not describe (any more) has no name to find on AWS; the
    embedded local stack, whose moto server forgets its jobs on a restart, keeps their output in
    `<job definition>/default/<job id>`."""
    if info is not None:
        return info.log_streams
    local = f"{stack.config.job_definitions.get(step, step)}/default/{job_id}"
    found = stack.logs.describe_log_streams(logGroupName=stack.config.log_group, logStreamNamePrefix=local)
    return tuple(str(s["logStreamName"]) for s in found.get("logStreams", []) if s["logStreamName"] == local)


def _print_log(stack: Stack, stream: str) -> None:
    params: dict[str, Any] = {"logGroupName": stack.config.log_group, "logStreamName": stream, "startFromHead": True}
    while True:
        response = stack.logs.get_log_events(**params)
        for event in response["events"]:
            console.print(event["message"], highlight=False, markup=False)
        if not response["events"] or response.get("nextForwardToken") == params.get("nextToken"):
            return
        params["nextToken"] = response["nextForwardToken"]


def logs(
    video_id: Annotated[str, typer.Argument(help="The video id.")],
    chunk: Annotated[int | None, typer.Option("--chunk", help="Only this chunk (default: every chunk).")] = None,
    stack_name: StackOption = None,
) -> None:
    """Print the CloudWatch logs of the chunks' jobs, step by step: every Batch attempt's stream."""
    stack = open_stack(stack_name)
    chunks = [stack.store.get_chunk(video_id, chunk)] if chunk is not None else stack.store.chunks(video_id)
    jobs = [(c.index, s, s.job_id) for c in chunks for s in c.steps if s.job_id]
    if not jobs:
        raise PipelineError(
            f"chunk {chunk} of {video_id} has no job yet"
            if chunk is not None
            else f"no chunk of {video_id} has a job yet"
        )
    described = {info.job_id: info for info in stack.batch.describe([job_id for _, _, job_id in jobs])}
    for index, record, job_id in jobs:
        console.rule(f"chunk {index}: {record.step} attempt {record.attempt}: job {job_id} ({record.state})")
        info = described.get(job_id)
        streams = _log_streams(stack, record.step, job_id, info)
        if not streams:
            known = f"Batch reports it {info.status}" if info else "Batch no longer describes the job"
            console.print(f"[dim]no log stream ({known})[/]")
        for stream in streams:
            if len(streams) > 1:
                console.print(f"[dim]{stream}[/]")
            try:
                _print_log(stack, stream)
            except stack.logs.exceptions.ResourceNotFoundException:
                console.print(f"[dim]no log stream {stream} in {stack.config.log_group}[/]")


def retry(
    video_id: Annotated[str, typer.Argument(help="The video id.")],
    chunk: Annotated[int | None, typer.Option("--chunk", help="Only this chunk.")] = None,
    stack_name: StackOption = None,
) -> None:
    """Run failed steps again (a new attempt); steps that did not fail are left alone. An S3 video whose split
    failed is split again."""
    stack = open_stack(stack_name)
    video = stack.store.get_video(video_id)
    if chunk is None and control.split_failed(video):
        job_id = control.retry_split(stack, video)
        console.print(
            f"retrying the split (attempt {video.split_attempt + 1}): job {job_id}"
            if job_id
            else "nothing to retry: the split is retried already"
        )
        return
    changed = control.retry(stack, video_id, chunk)
    parts = [f"{len(changed.chunks)} chunk(s): {list(changed.chunks)}"] if changed.chunks else []
    parts += [f"the video's {changed.video_step} step"] if changed.video_step else []
    console.print(f"retrying {' and '.join(parts)}" if parts else "nothing to retry: no failed step", highlight=False)


def cancel(
    video_id: Annotated[str, typer.Argument(help="The video id.")],
    stack_name: StackOption = None,
) -> None:
    """Terminate the video's jobs and mark its unfinished steps cancelled (a finished video is left as it is)."""
    stack = open_stack(stack_name)
    video = stack.store.get_video(video_id)
    if video.state in schema.FINAL:
        console.print(f"{video_id} is already {video.state}: nothing to cancel", highlight=False)
        return
    changed = control.cancel(stack, video_id)
    step = f" and the video's {changed.video_step} step" if changed.video_step else ""
    console.print(f"cancelled {len(changed.chunks)} chunk(s){step}, terminated {len(changed.jobs)} job(s)")


def register(app: typer.Typer) -> None:
    for command in (submit, status, results, logs, retry, cancel):
        app.command()(command)
