"""`derby-batch local up|down|status` and `derby-batch demo`: the embedded local stack from the command line."""

from __future__ import annotations

import dataclasses
import os
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from batch_jobs import schema
from batch_jobs.lifecycle import JOB_FAILED, JOB_FINISHED
from batch_jobs.pipeline import load_pipeline
from cli.local.errors import LocalStackError
from cli.local.instance import find_running
from cli.local.ledger import JobRecord, Ledger
from cli.local.paths import OUTPUT_ROOT, LocalPaths

DEFAULT_PORT = 4599
console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)
local_app = typer.Typer(help="The embedded local stack: the whole pipeline on this machine, no AWS account.")


def _job_line(record: JobRecord) -> None:
    detail = f" (exit {record.exit_code}: {record.status_reason})" if record.status == JOB_FAILED else ""
    console.print(f"job {record.job_name} attempt {record.attempts}: {record.status}{detail}")


@local_app.command("up")
def up(
    workers: Annotated[int, typer.Option(min=1, help="CPU-queue jobs at once.")] = 2,
    gpus: Annotated[int | None, typer.Option(min=1, help="GPU-queue jobs at once (default: cores + 1).")] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = DEFAULT_PORT,
    pipeline: Annotated[
        Path | None,
        typer.Option(help="Pipeline JSON to run from now on (default: the last, or the shipped one)."),
    ] = None,
) -> None:
    """Run the local stack in the foreground until Ctrl-C; other terminals' commands use it."""
    from cli.local.runtime import LocalSettings, LocalStack, default_gpu_slots  # moto loads only when it runs

    steps = load_pipeline(pipeline) if pipeline else None
    paths = LocalPaths.from_env()
    gpus = gpus or default_gpu_slots()
    stack = LocalStack(
        LocalSettings(paths, port=port, workers=workers, gpus=gpus, pipeline=steps, on_job=_job_line), log=console.print
    )
    # The signals that asked to stop. Not a threading.Event: its `set` takes a plain lock that the interrupted main
    # thread may be holding inside `wait`, and a Ctrl-C in that instant hung `local up` for good.
    stop_signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_signals.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.start()
        console.print(
            f"local stack up at {stack.endpoint} ({workers} CPU + {gpus} GPU job slots, state in {paths.root}); "
            "run `derby-batch submit VIDEO --wait` in another terminal. Ctrl-C stops."
        )
        while not stop_signals:
            time.sleep(0.2)
        console.print("stopping: running jobs are re-run on the next `local up`")
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console.print("local stack stopped")


@local_app.command("down")
def down(timeout: Annotated[float, typer.Option(help="Seconds to wait for it to stop.")] = 60) -> None:
    """Stop the `local up` running on this data directory (as Ctrl-C in its terminal would)."""
    paths = LocalPaths.from_env()
    running = find_running(paths)
    if running is None:
        raise LocalStackError(f"no local stack is running on {paths.root}")
    os.kill(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while find_running(paths) is not None:
        if time.monotonic() > deadline:
            raise LocalStackError(f"the local stack (pid {running.pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.2)
    console.print(f"local stack (pid {running.pid}) stopped")


@local_app.command("status")
def status() -> None:
    """Whether a local stack runs on this data directory, and its jobs as the executor recorded them."""
    paths = LocalPaths.from_env()
    running = find_running(paths)
    where = f"running at {running.endpoint} (pid {running.pid})" if running else "not running"
    records = Ledger(paths.jobs).all() if paths.jobs.is_dir() else []
    counts: dict[str, int] = {}
    for record in records:
        counts[record.status] = counts.get(record.status, 0) + 1
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "no jobs"
    unfinished = sum(1 for r in records if r.status not in JOB_FINISHED)
    console.print(
        f"local stack {where}; state in {paths.root}; jobs: {summary}"
        + (f" ({unfinished} resume on the next start)" if unfinished and not running else "")
    )


def demo(
    seconds: Annotated[float, typer.Option(min=1, help="Length of the generated sample.")] = 6.0,
    chunk_seconds: Annotated[float, typer.Option(min=0.5, help="Chunk length (a keyframe every chunk).")] = 2.0,
    output: Annotated[Path, typer.Option(help="Where outputs go: <output>/<video id>/.")] = OUTPUT_ROOT,
) -> None:
    """Generate the sample clip, run it through the local stack and print what it found and where the outputs are."""
    from batch_jobs.submit import submit_file
    from cli.local.clips import DEMO_SAMPLE, sample_with_keyframes
    from cli.local.outputs import Seen, write_outputs
    from cli.local.runtime import LOCAL_STACK
    from cli.pipeline_cmd import chunks_table, merged_lines
    from cli.stack import open_stack

    started = time.monotonic()
    spec = dataclasses.replace(DEMO_SAMPLE, seconds=seconds)
    clip = output / "sample.mp4"
    output.mkdir(parents=True, exist_ok=True)
    truth = sample_with_keyframes(clip, spec, chunk_seconds)
    out.print(f"sample: {clip} ({spec.width}x{spec.height}, {seconds:g} s, {spec.people} people; truth in {truth})")
    stack = open_stack(LOCAL_STACK)
    with tempfile.TemporaryDirectory(prefix="derby-split-") as tmp:
        submitted = submit_file(stack, clip, Path(tmp), chunk_seconds)
    out.print(f"submitted {submitted.video_id}: {submitted.chunks} chunks, {submitted.frames} frames")
    with Live(console=out, auto_refresh=False) as live:
        while True:
            video = stack.store.get_video(submitted.video_id)
            live.update(chunks_table(stack, video), refresh=True)
            if video.state in schema.FINAL:
                break
            time.sleep(0.5)
    out.line()
    wall = time.monotonic() - started
    if video.state != schema.DONE:
        raise LocalStackError(f"the demo video ended {video.state}: {video.error or 'see the table above'}")
    outputs = write_outputs(stack, submitted.video_id, output)
    for line in merged_lines(outputs.merged, outputs.results, outputs.plot):
        out.print(line)
    seen = Seen.of(outputs.merged.document)
    out.print(
        f"people seen: up to {seen.most_people} at once ({seen.person_boxes} person and {seen.face_boxes} face boxes) "
        f"in {seen.frames} frames; {seen.frames / wall:.1f} fps over {wall:.1f} s wall time"
    )
    out.print(f"outputs in {outputs.directory}/:")
    for path in (outputs.results, outputs.plot, outputs.annotated):
        if path is not None:
            out.print(f"  {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")
    app.command("demo")(demo)
