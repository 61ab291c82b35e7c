"""`python -m devtools.local_bench`: wall time of the local stack on the sample against `derby-batch detect` on the same
clip with the same detectors (goal: local stack <= 1.2x).

Both sides pay what a user pays once a first run has cached the person model's conversion, each in a fresh process:
`detect` its start-up, the local stack its imports and server start, the split and upload, one job process per
chunk-step and the stream and event round trips. The local side's clock stops when the video is done (its process
then stops the stack, which is not counted).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from batch_jobs import schema
from batch_jobs.submit import submit_file
from cli.local.clips import DEMO_SAMPLE, sample_with_keyframes
from cli.local.paths import LocalPaths
from cli.local.runtime import LocalSettings, LocalStack, default_gpu_slots

GOAL = 1.2
# How often the bench asks whether the video is done: each ask is a request the stack answers, on the cores the jobs
# use (every 50 ms cost the stack 1 s of CPU per run); `submit --wait` asks less often.
WAIT_POLL_SECONDS = 0.2
DONE = "video done"


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Timing:
    wall_s: float
    jobs_cpu_s: float  # CPU of child processes (detect itself, or the stack's jobs and job host)
    self_cpu_s: float = 0.0  # CPU of this process (the stack: moto, poller, router, split and upload)


@dataclass(frozen=True)
class LocalRun:
    start_s: float  # server, bootstrap, restore
    pipeline: Timing  # submit (split, upload, items) until the video is done
    chunks: int
    process_s: float = 0.0  # the process's own start: interpreter, imports

    @property
    def total_s(self) -> float:
        return self.process_s + self.start_s + self.pipeline.wall_s


def time_detect(clip: Path, out: Path, detectors: str, *options: str) -> Timing:
    cli = Path(sys.executable).with_name("derby-batch")
    started, cpu = time.monotonic(), cpu_seconds(resource.RUSAGE_CHILDREN)
    subprocess.run([str(cli), "detect", str(clip), "-o", str(out), "--detectors", detectors, *options], check=True)
    return Timing(time.monotonic() - started, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu)


def time_local(clip: Path, settings: LocalSettings, chunk_seconds: float) -> LocalRun:
    """Start a stack in this process, submit the clip, wait until the video is done; the stop is not counted."""
    started = time.monotonic()
    stack = LocalStack(settings)
    stack.start()
    try:
        ready = time.monotonic()
        jobs_cpu, self_cpu = cpu_seconds(resource.RUSAGE_CHILDREN), cpu_seconds(resource.RUSAGE_SELF)
        submitted = submit_file(stack.clients(), clip, settings.paths.root / "split", chunk_seconds)
        while stack.store.get_video(submitted.video_id).state in schema.ACTIVE:
            time.sleep(WAIT_POLL_SECONDS)
        if stack.store.get_video(submitted.video_id).state != schema.DONE:
            raise SystemExit(f"the local stack did not finish the video: {stack.store.get_video(submitted.video_id)}")
        wall, self_cpu = time.monotonic() - ready, cpu_seconds(resource.RUSAGE_SELF) - self_cpu
        print(DONE, flush=True)  # the clock of `time_local_process` stops here
    finally:
        stack.stop()
    # Jobs forked by the job host are its children: their CPU reaches this process once the host has exited.
    pipeline = Timing(wall, cpu_seconds(resource.RUSAGE_CHILDREN) - jobs_cpu, self_cpu)
    run = LocalRun(ready - started, pipeline, submitted.chunks)
    print(json.dumps(dataclasses.asdict(run)), flush=True)
    return run


def time_local_process(clip: Path, data: Path, chunk_seconds: float, workers: int, gpus: int) -> LocalRun:
    """`time_local` in a fresh interpreter, as `submit --wait` runs: timed from the process's start until it says
    the video is done."""
    argv = [sys.executable, "-m", "devtools.local_bench", "--run-local", str(clip), str(data)]
    argv += ["--chunk-seconds", str(chunk_seconds), "--workers", str(workers), "--gpus", str(gpus)]
    started = time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        said = child.stdout.readline().strip()
        done = time.monotonic()
        line = child.stdout.readline()
        child.stdout.read()
    if child.returncode != 0 or said != DONE or not line:
        raise SystemExit(f"the local stack run failed (exit {child.returncode})")
    saved = json.loads(line)
    run = LocalRun(saved["start_s"], Timing(**saved["pipeline"]), saved["chunks"])
    return dataclasses.replace(run, process_s=done - started - run.start_s - run.pipeline.wall_s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=12.0, help="sample length")
    parser.add_argument("--chunk-seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each side; the best of each counts")
    parser.add_argument("--workers", type=int, default=LocalSettings.workers, help="CPU-queue job slots")
    parser.add_argument("--gpus", type=int, default=default_gpu_slots(), help="GPU-queue job slots")
    parser.add_argument("--run-local", nargs=2, type=Path, metavar=("CLIP", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_local:  # one timed local stack run, in the process time_local_process started
        clip, data = args.run_local
        time_local(clip, LocalSettings(LocalPaths(data), workers=args.workers, gpus=args.gpus), args.chunk_seconds)
        return
    detectors = "human,face"  # what the shipped pipeline's detect step runs
    with tempfile.TemporaryDirectory(prefix="derby-local-bench-") as tmp:
        work = Path(tmp)
        clip = work / "sample.mp4"
        spec = dataclasses.replace(DEMO_SAMPLE, seconds=args.seconds)
        sample_with_keyframes(clip, spec, args.chunk_seconds)
        print(f"sample: {spec.width}x{spec.height}, {args.seconds:g} s at {spec.fps} fps, keyframe every "
              f"{args.chunk_seconds:g} s", flush=True)  # fmt: skip
        # Both sides as on a machine that has run the tool before: the person model's conversion is cached.
        time_detect(clip, work / "warm-up.json", detectors, "--every", "1000")
        detects, locals_, rounds = [], [], []
        for round_ in range(args.rounds):  # alternate, keep each side's best: the machine may be shared
            detects.append(time_detect(clip, work / "detect.json", detectors))
            data = work / f"data-{round_}"
            locals_.append(time_local_process(clip, data, args.chunk_seconds, args.workers, args.gpus))
            rounds.append(f"round {round_ + 1}: detect {detects[-1].wall_s:.1f} s, local stack "
                          f"{locals_[-1].total_s:.1f} s ({locals_[-1].total_s / detects[-1].wall_s:.2f})")  # fmt: skip
        detect = min(detects, key=lambda t: t.wall_s)
        local = min(locals_, key=lambda r: r.total_s)
    ratio = local.total_s / detect.wall_s
    p = local.pipeline
    print(*rounds, sep="\n")
    print(f"derby-batch detect ({detectors}): {detect.wall_s:.1f} s wall, {detect.jobs_cpu_s:.1f} s CPU")
    print(f"local stack ({local.chunks} chunks): {local.total_s:.1f} s wall (process {local.process_s:.1f} s + stack "
          f"start {local.start_s:.1f} s + submit to done {p.wall_s:.1f} s), CPU {p.jobs_cpu_s:.1f} s in jobs + "
          f"{p.self_cpu_s:.1f} s in the stack")  # fmt: skip
    print(f"local stack / detect: {ratio:.2f} wall (goal <= {GOAL}), "
          f"{(p.jobs_cpu_s + p.self_cpu_s) / detect.jobs_cpu_s:.2f} CPU")  # fmt: skip


if __name__ == "__main__":
    main()
