"""`python -m devtools.router_bench`: what a chunk-step costs in AWS calls, and how fast the split is.

1. AWS calls per chunk-step (the goal, <= 5, counts the router's calls only): a video walks the probe pipeline on
   a moto server over HTTP; botocore hooks count every call the router makes and every call the jobs make.
2. Split speed against `ffmpeg -c copy -f segment` (imageio-ffmpeg's binary) on the same file, best of N runs
   each (goal: >= 0.8x ffmpeg's speed). Frames are counted the same way (demuxed packets, no decode) in the source,
   in our chunks and in ffmpeg's segments: the splitter's own count is not the reference.

It drives the real router in-process (`devtools.drive`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import boto3

from batch_jobs.bootstrap import bootstrap_stack
from batch_jobs.config import default_config
from batch_jobs.pipeline import parse_pipeline
from batch_jobs.split import split_video
from batch_jobs.submit import submit_file
from devtools.sample_clip import make_clip

PROBE_PIPELINE = [
    {"name": "timesplit", "action": "split"},
    {"name": "probe", "action": "probe"},
    {"name": "summarize", "action": "summarize"},
]


def calls_per_chunk_step(clip: Path, chunk_seconds: float) -> dict[str, Any]:

    from devtools.drive import CachedSession, World, count_calls
    from devtools.moto_server import serve
    from router import handler
    from router.core import Router

    saved = dict(os.environ)
    server, _ = serve("bench")
    try:
        session = boto3.Session(region_name="us-east-1")
        config = default_config("bench", "us-east-1", pipeline=parse_pipeline(PROBE_PIPELINE))
        world = World(session, config, bootstrap_stack(session, config))
        router = Router.from_session(CachedSession(session), config.stack)
        handler.set_router(router)
        router_calls = count_calls([router.store.client, router.batch.client])
        with tempfile.TemporaryDirectory() as tmp:
            submitted = submit_file(replace(world.stack, config=config), clip, Path(tmp), chunk_seconds)
        job_calls = count_calls([world.jobs_session.client(n) for n in ("ssm", "s3", "dynamodb")])
        world.pump()
        handler.set_router(None)
        chunk_steps = submitted.chunks * (len(config.pipeline) - 1)
        return {
            "chunks": submitted.chunks,
            "chunk_steps": chunk_steps,
            "router_calls_per_chunk_step": round(sum(router_calls.values()) / chunk_steps, 2),
            # what each chunk-step adds, without the twice-per-chunk (counted: a transaction, then a read of the
            # video's counts) and once-per-video (settled) calls
            "router_calls_per_step_alone": round(
                (sum(router_calls.values()) - 2 * submitted.chunks - 1) / chunk_steps, 2
            ),
            "job_calls_per_chunk_step": round(sum(job_calls.values()) / chunk_steps, 2),
            "router_calls": dict(router_calls),
            "job_calls": dict(job_calls),
        }
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def _frames(paths: list[Path]) -> int:
    """Video packets with data in the files: the frame count of a stream copy, without decoding."""
    total = 0
    for path in paths:
        with av.open(str(path)) as container:
            total += sum(1 for p in container.demux(video=0) if p.size)
    return total


def split_speed(clip: Path, chunk_seconds: float, rounds: int) -> dict[str, Any]:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            out = Path(tmp) / f"ours{i}"
            started = time.perf_counter()
            _, chunks = split_video(clip, out, chunk_seconds)
            ours.append(time.perf_counter() - started)
            our_files = [c.path for c in chunks]
            seg = Path(tmp) / f"ffmpeg{i}"
            seg.mkdir()
            command = [
                ffmpeg,
                "-v",
                "error",
                "-i",
                str(clip),
                "-map",
                "0:v:0",
                "-c",
                "copy",
                "-f",
                "segment",
                "-segment_time",
                str(chunk_seconds),
                "-reset_timestamps",
                "1",
                str(seg / "%05d.mp4"),
            ]
            started = time.perf_counter()
            subprocess.run(command, check=True)
            theirs.append(time.perf_counter() - started)
        ffmpeg_files = sorted(seg.glob("*.mp4"))
        result = {
            "source_frames": _frames([clip]),
            "our_chunks": len(our_files),
            "our_frames": _frames(our_files),
            "ffmpeg_chunks": len(ffmpeg_files),
            "ffmpeg_frames": _frames(ffmpeg_files),
            "ours_s": round(min(ours), 4),
            "ffmpeg_s": round(min(theirs), 4),
        }
        shutil.rmtree(tmp, ignore_errors=True)
    result["speed_vs_ffmpeg"] = round(result["ffmpeg_s"] / result["ours_s"], 2)
    result["frames_conserved"] = result["our_frames"] == result["source_frames"] == result["ffmpeg_frames"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.router_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the split benchmark clip")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "walk.mp4", Path(tmp) / "split.mp4"
        make_clip(small, seconds=12)
        make_clip(big, seconds=ns.seconds, fps=30, gop=60, size=(640, 360))
        report = {"calls": calls_per_chunk_step(small, 3.0), "split": split_speed(big, 10.0, ns.rounds)}
    if ns.json:
        print(json.dumps(report, indent=2))
        return
    calls, split = report["calls"], report["split"]
    print(f"AWS calls per chunk-step ({calls['chunks']} chunks x 2 steps, moto over HTTP):")
    print(
        f"  router {calls['router_calls_per_step_alone']} per chunk-step + 2 per chunk + 1 per video"
        f" (goal <= 5: the router's calls only); {calls['router_calls_per_chunk_step']} averaged here"
        f"   {calls['router_calls']}"
    )
    print(f"  job    {calls['job_calls_per_chunk_step']} (not counted in the goal)   {calls['job_calls']}")
    print(f"split of a {ns.seconds:.0f} s 640x360 clip into 10 s chunks (best of {ns.rounds}):")
    print(
        f"  ours {split['ours_s']} s, ffmpeg -c copy -f segment {split['ffmpeg_s']} s"
        f" -> {split['speed_vs_ffmpeg']}x ffmpeg's speed (goal >= 0.8)"
    )
    print(
        f"  frames (demuxed packets): source {split['source_frames']},"
        f" ours {split['our_frames']} in {split['our_chunks']} chunks,"
        f" ffmpeg {split['ffmpeg_frames']} in {split['ffmpeg_chunks']} chunks;"
        f" conserved: {split['frames_conserved']}"
    )


if __name__ == "__main__":
    main()
