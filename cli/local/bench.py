"""`python -m cli.local.bench`: wall time of the local stack on the sample against `derby-batch detect` on the same
clip with the same detectors (goal: local stack <= 1.2x).

Both sides pay what a user pays once a first run has cached the person model's conversion: `detect` its TensorFlow
start-up, the local stack its server start, the split and upload, one job process per chunk-step (each importing
TensorFlow) and the stream and event round trips.
"""

from __future__ import annotations

import argparse
import dataclasses
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


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Timing:
    wall_s: float
    jobs_cpu_s: float  # CPU of child processes (detect itself, or the stack's jobs)
    self_cpu_s: float = 0.0  # CPU of this process (the stack: moto, poller, router, split and upload)


@dataclass(frozen=True)
class LocalRun:
    start_s: float  # server, bootstrap, restore
    pipeline: Timing  # submit (split, upload, items) until the video is done
    chunks: int

    @property
    def total_s(self) -> float:
        return self.start_s + self.pipeline.wall_s


def time_detect(clip: Path, out: Path, detectors: str, *options: str) -> Timing:
    cli = Path(sys.executable).with_name("derby-batch")
    started, cpu = time.monotonic(), cpu_seconds(resource.RUSAGE_CHILDREN)
    subprocess.run([str(cli), "detect", str(clip), "-o", str(out), "--detectors", detectors, *options], check=True)
    return Timing(time.monotonic() - started, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu)


def time_local(clip: Path, settings: LocalSettings, chunk_seconds: float) -> LocalRun:
    """Start a fresh stack, submit the clip, wait until the video is done; the stop is not counted."""
    started = time.monotonic()
    stack = LocalStack(settings)
    stack.start()
    try:
        ready = time.monotonic()
        jobs_cpu, self_cpu = cpu_seconds(resource.RUSAGE_CHILDREN), cpu_seconds(resource.RUSAGE_SELF)
        s3 = stack.session_client("s3")
        submitted = submit_file(s3, stack.store, stack.config, clip, settings.paths.root / "split", chunk_seconds)
        while stack.store.get_video(submitted.video_id).state in schema.ACTIVE:
            time.sleep(0.05)
        if stack.store.get_video(submitted.video_id).state != schema.DONE:
            raise SystemExit(f"the local stack did not finish the video: {stack.store.get_video(submitted.video_id)}")
        pipeline = Timing(
            time.monotonic() - ready,
            cpu_seconds(resource.RUSAGE_CHILDREN) - jobs_cpu,
            cpu_seconds(resource.RUSAGE_SELF) - self_cpu,
        )
    finally:
        stack.stop()
    return LocalRun(ready - started, pipeline, submitted.chunks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=12.0, help="sample length")
    parser.add_argument("--chunk-seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each side; the best of each counts")
    parser.add_argument("--workers", type=int, default=LocalSettings.workers, help="CPU-queue job slots")
    parser.add_argument("--gpus", type=int, default=default_gpu_slots(), help="GPU-queue job slots")
    args = parser.parse_args(argv)
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
        detects, locals_ = [], []
        for round_ in range(args.rounds):  # alternate, keep each side's best: the machine may be shared
            detects.append(time_detect(clip, work / "detect.json", detectors))
            settings = LocalSettings(LocalPaths(work / f"data-{round_}"), workers=args.workers, gpus=args.gpus)
            locals_.append(time_local(clip, settings, args.chunk_seconds))
        detect = min(detects, key=lambda t: t.wall_s)
        local = min(locals_, key=lambda r: r.total_s)
    ratio = local.total_s / detect.wall_s
    p = local.pipeline
    print(f"derby-batch detect ({detectors}): {detect.wall_s:.1f} s wall, {detect.jobs_cpu_s:.1f} s CPU")
    print(f"local stack ({local.chunks} chunks): {local.total_s:.1f} s wall (start {local.start_s:.1f} s + submit to "
          f"done {p.wall_s:.1f} s), CPU {p.jobs_cpu_s:.1f} s in jobs + {p.self_cpu_s:.1f} s in the stack")  # fmt: skip
    print(f"local stack / detect: {ratio:.2f} wall (goal <= {GOAL}), "
          f"{(p.jobs_cpu_s + p.self_cpu_s) / detect.jobs_cpu_s:.2f} CPU")  # fmt: skip


if __name__ == "__main__":
    main()
