"""`python -m batch_jobs run --step S --video-id ID --chunk N --attempt A`: the command of every job definition."""

from __future__ import annotations

import argparse
import os
import sys

import boto3

from batch_jobs.errors import PipelineError
from batch_jobs.job import Job, JobArgs, JobEnv, one_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batch_jobs")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one chunk-step (what an AWS Batch job does)")
    run.add_argument("--step", required=True)
    run.add_argument("--video-id", required=True)
    run.add_argument("--chunk", required=True, type=int)
    run.add_argument("--attempt", type=int, default=1)
    ns = parser.parse_args(argv)
    try:
        args = JobArgs(step=ns.step, video_id=ns.video_id, chunk=ns.chunk, attempt=ns.attempt)
        return Job(args, JobEnv.from_environ(), boto3.Session()).run()
    except PipelineError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


def exit_now(code: int) -> None:
    """Exit without the interpreter's teardown: after TensorFlow was imported it takes 0.7 s of CPU, per job, while
    the job's slot stays taken. Everything the job wrote is closed by now; only the standard streams need a flush."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
